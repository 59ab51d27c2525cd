"""support-platform: load and validate the stack's settings, compose the platform, export."""

import os

import pulumi

from components.app.image_build import docker_daemon_problem
from components.config import SettingsError, data_shape
from components.image_ledger import LEDGER_OUTPUT, ledger_output
from components.platform import Platform, PlatformArgs
from components.preflight import cluster_preflight
from components.runtime_config import check_data_changes, previous_data_shape, previous_outputs, read_stack_config

stack = pulumi.get_stack()
project_dir = os.path.dirname(os.path.abspath(__file__))
try:
    settings, external = read_stack_config(stack, project_dir)
    previous = previous_outputs(stack)
    # Changes a StatefulSet or a claim cannot take in place, against what the last update deployed.
    check_data_changes(stack, settings, previous_data_shape(previous))
except SettingsError as error:
    # Before any resource is registered: a bad config deploys nothing.
    raise pulumi.RunError(str(error)) from None
# pulumi-docker fails even a preview without a daemon, and says only "failed to connect": say it first.
daemon_problem = docker_daemon_problem(settings.builds(), os.environ)
if daemon_problem is not None:
    raise pulumi.RunError(f"stack '{stack}': {daemon_problem}")
# What the target cluster must already have (CRDs, classes, issuers), asked before anything is registered.
refusal = cluster_preflight(settings, stack, project_dir, os.environ, pulumi.log.warn)
if refusal is not None:
    raise pulumi.RunError(refusal)

platform = Platform(
    "support-platform",
    PlatformArgs(
        settings=settings,
        external=external,
        stack=stack,
        project_dir=project_dir,
    ),
)

pulumi.export("environment", settings.environment)
pulumi.export("namespaces", {"app": platform.app_namespace})
pulumi.export("serviceHosts", platform.service_hosts)
pulumi.export("edgeHosts", platform.edge_hosts)
pulumi.export("dataShape", data_shape(settings.data))
pulumi.export("dataEndpoints", platform.data_hosts)
# What a rollback needs and no DIY backend's history keeps: the digest each build pushed, and when.
built_images = ledger_output(
    (previous or {}).get(LEDGER_OUTPUT), {n: platform.service_images[n] for n in settings.builds()}
)
if built_images is not None:
    pulumi.export(LEDGER_OUTPUT, built_images)
if platform.render_directory is not None:
    pulumi.export("renderDirectory", platform.render_directory)
