"""support-platform: load and validate the stack's settings, compose the platform, export."""

import os

import pulumi

from components.config import SettingsError
from components.platform import Platform, PlatformArgs
from components.stack_config import read_stack_config

stack = pulumi.get_stack()
try:
    settings, external = read_stack_config(stack)
except SettingsError as error:
    # Before any resource is registered: a bad config deploys nothing.
    raise pulumi.RunError(str(error)) from None

platform = Platform(
    "support-platform",
    PlatformArgs(
        settings=settings,
        external=external,
        stack=stack,
        project_dir=os.path.dirname(os.path.abspath(__file__)),
    ),
)

pulumi.export("environment", settings.environment)
pulumi.export("namespaces", {"app": platform.app_namespace})
pulumi.export("serviceHosts", platform.service_hosts)
pulumi.export("edgeHosts", platform.edge_hosts)
if platform.render_directory is not None:
    pulumi.export("renderDirectory", platform.render_directory)
