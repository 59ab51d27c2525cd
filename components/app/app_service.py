"""One application service: the same kit for every service, built by the hardened builder.

ServiceAccount, ConfigMap (non-secret env), Secret (only the credentials this service references),
Deployment, ClusterIP Service, NetworkPolicy, and where configured an HPA and a PodDisruptionBudget.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.app.image_build import image_build
from components.app.migration import Migration, MigrationArgs
from components.app.rollout import rollout_timeouts
from components.app.web_server import CONFIG_PATH as NGINX_CONFIG_PATH
from components.app.web_server import web_files
from components.config import BuildSettings, ServiceSettings
from components.contracts import DataEndpoint, MigrationPlan
from components.kit import workload
from components.kit.context import TierContext
from components.kit.objects import Manifest, config_map, digest, register, workload_kit
from components.labels import image_version, selector_labels, standard_labels


@dataclass(frozen=True)
class AppServiceArgs:
    settings: ServiceSettings
    namespace: str
    # The app tier's context: its instance, and the namespace every object waits for.
    context: TierContext
    # Non-secret environment, already merged with values derived from connections.
    env: Mapping[str, str]
    # Secret environment: env name -> secret Output; None where an optional external secret is unset.
    secret_env: Mapping[str, pulumi.Output[str] | None]
    network_policy: Mapping[str, Any]
    termination_grace_period_seconds: int
    registry_password: pulumi.Output[str] | None = None
    docker_provider: pulumi.ProviderResource | None = None
    # Build contexts are relative to it; so are the paths handed to pulumi-docker.
    project_dir: str = "."
    # Schema migrations run (after a backup, where planned) before this service's Deployment changes.
    migration: MigrationPlan | None = None


def config_checksum(
    env: Mapping[str, str], secret_env: Mapping[str, pulumi.Output[str]], files: Mapping[str, str] | None = None
) -> pulumi.Output[str]:
    """A digest of everything the pods read at start (env, secrets, config files), so that a change to
    it rolls them.

    Hashing the secret values is what makes a rotation roll the pods. The digest of a high-entropy
    secret reveals nothing usable, so it is published unsecret (as Helm's checksum/secret idiom does);
    keeping it secret would mark the whole pod template secret and hide every diff.
    """
    secrets = pulumi.Output.all(**secret_env) if secret_env else pulumi.Output.from_input({})
    # Files only where there are some: the digest of every other service stays what it was.
    extra = {"files": dict(files)} if files else {}
    return pulumi.Output.unsecret(
        secrets.apply(lambda values: digest({"env": dict(env), "secrets": dict(values), **extra}))
    )


def service_workload(
    identity: workload.WorkloadIdentity, svc: ServiceSettings, image: pulumi.Input[str], grace_seconds: int
) -> workload.WorkloadSpec:
    """An app service as the hardened builder's input."""
    assert identity.secret_name is not None or not svc.secret_env
    return workload.WorkloadSpec(
        identity=identity,
        image=image,
        ports=svc.ports,
        probes={
            "startup": workload.settings_probe(svc.probes.startup),
            "readiness": workload.settings_probe(svc.probes.readiness),
            "liveness": workload.settings_probe(svc.probes.liveness),
        },
        resources=workload.resources_spec(svc.resources),
        run_as_user=svc.run_as_user,
        termination_grace_period_seconds=grace_seconds,
        writable_paths=svc.writable_paths,
        command=svc.command,
        args=svc.args,
        env=[
            workload.secret_env(
                env_name, identity.secret_name or "", env_name, env_name in identity.optional_secret_env
            )
            for env_name in sorted(svc.secret_env)
        ],
        lifecycle=workload.pre_stop_sleep(svc.pre_stop_sleep_seconds),
        replicas=svc.replicas,
        autoscaling=svc.autoscaling,
    )


class AppService(pulumi.ComponentResource):
    """A Deployment and its kit for one service of the app tier."""

    dns_name: pulumi.Output[str]
    image: pulumi.Output[str]

    def __init__(self, name: str, args: AppServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:app:Service", name, None, opts)
        svc, ctx = args.settings, args.context

        image: pulumi.Input[str]
        if svc.build is not None:
            image = self._build_image(name, svc.build, args)
            version = svc.build.tag
        else:
            assert svc.image is not None  # settings validation guarantees image or build
            image = svc.image
            version = image_version(svc.image)

        set_secret_env: dict[str, pulumi.Output[str]] = {k: v for k, v in args.secret_env.items() if v is not None}
        identity = workload.WorkloadIdentity(
            name=name,
            namespace=args.namespace,
            labels=standard_labels(name, ctx.instance, svc.component, version),
            selector=selector_labels(name, ctx.instance),
            config_map_name=f"{name}-env",
            secret_name=f"{name}-secrets" if args.secret_env else None,
            service_account_name=name,
            optional_secret_env=frozenset(k for k, v in args.secret_env.items() if v is None),
        )
        spec = service_workload(identity, svc, image, args.termination_grace_period_seconds)
        kit = workload_kit(
            name,
            identity,
            svc.ports,
            args.network_policy,
            env=args.env,
            secret_values=set_secret_env if identity.secret_name is not None else None,
        )
        # The app never calls the Kubernetes API; no token is mounted anywhere.
        objects = register(kit, self, ctx)
        started_from: list[pulumi.Resource] = [objects[f"{name}-serviceaccount"], objects[f"{name}-env"]]
        if identity.secret_name is not None:
            started_from.append(objects[f"{name}-secrets"])

        self.migration: Migration | None = None
        if args.migration is not None:
            plan = args.migration
            self.migration = Migration(
                f"{name}-migration",
                MigrationArgs(
                    service=name,
                    namespace=args.namespace,
                    context=ctx,
                    image=image,
                    plan=plan,
                    config_map_name=identity.config_map_name,
                    secret_name=identity.secret_name,
                    run_as_user=svc.run_as_user,
                    after=started_from,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            started_from.append(self.migration.job)

        files = web_files(svc)
        deployment_spec = workload.deployment_spec(spec, config_checksum(args.env, set_secret_env, files))
        if files:
            # The program's nginx.conf over the image's (a file, not the directory: mime.types stays).
            objects |= register(
                [config_map(f"{name}-files", f"{name}-files", args.namespace, identity.labels, files)], self, ctx
            )
            started_from.append(objects[f"{name}-files"])
            workload.mount(
                deployment_spec["template"]["spec"],
                "files",
                NGINX_CONFIG_PATH,
                {"config_map": {"name": f"{name}-files"}},
                sub_path="nginx.conf",
            )
        rollout = [
            Manifest(
                f"{name}-deployment",
                "Deployment",
                {"metadata": workload.metadata(name, args.namespace, identity.labels), "spec": deployment_spec},
                custom_timeouts=rollout_timeouts(svc),
            )
        ]
        deployment = register(rollout, self, ctx, *started_from)[f"{name}-deployment"]
        scaling: list[Manifest] = []
        if svc.autoscaling.enabled:
            scaling.append(
                Manifest(
                    f"{name}-hpa",
                    "HorizontalPodAutoscaler",
                    {
                        "metadata": workload.metadata(name, args.namespace, identity.labels),
                        "spec": workload.hpa_spec(name, svc.autoscaling),
                    },
                )
            )
        register(scaling, self, ctx, deployment)
        if workload.needs_disruption_budget(spec):
            budget = Manifest(
                f"{name}-pdb",
                "PodDisruptionBudget",
                {
                    "metadata": workload.metadata(name, args.namespace, identity.labels),
                    "spec": workload.pdb_spec(identity.selector),
                },
            )
            register([budget], self, ctx)

        self.dns_name = pulumi.Output.from_input(f"{name}.{args.namespace}.svc.cluster.local")
        self.image = pulumi.Output.from_input(image)
        self.register_outputs({"dnsName": self.dns_name, "image": self.image})

    def _build_image(self, name: str, build: BuildSettings, args: AppServiceArgs) -> pulumi.Output[str]:
        # Loaded here: only a stack that builds images pays for importing the docker SDK.
        import pulumi_docker as docker  # noqa: PLC0415

        plan = image_build(name, build, args.project_dir)
        registry = None
        if build.registry_username is not None:
            registry = docker.RegistryArgs(
                server=build.repository.split("/", 1)[0],
                username=build.registry_username,
                password=args.registry_password,
            )
        image = docker.Image(
            f"{name}-image",
            image_name=f"{build.repository}:{build.tag}",
            build=docker.DockerBuildArgs(
                context=plan.context,
                dockerfile=plan.dockerfile,
                platform=build.platform,
                target=plan.target,
                args=dict(build.args) or None,
            ),
            registry=registry,
            opts=pulumi.ResourceOptions(parent=self, provider=args.docker_provider),
        )
        # The pushed digest, not the tag: what was built is exactly what runs.
        digest: pulumi.Output[str] = image.repo_digest
        return digest


def derived_env(
    svc: ServiceSettings,
    services: Mapping[str, ServiceSettings],
    endpoints: Mapping[str, DataEndpoint],
    namespace: str,
    cors_origins: list[str],
) -> dict[str, str]:
    """Non-secret env from declared connections, under the service's own values (which win)."""
    env: dict[str, str] = {}
    for target in svc.connects_to:
        if target in services:
            env[f"{target.upper().replace('-', '_')}_URL"] = (
                f"http://{target}.{namespace}.svc.cluster.local:{services[target].http_port}"
            )
        elif target == "chroma" and target in endpoints:
            scheme = "https" if endpoints[target].tls else "http"
            env["CHROMA_URL"] = f"{scheme}://{endpoints[target].host}:{endpoints[target].port}"
    if cors_origins and svc.expose:
        env["BACKEND_CORS_ORIGINS"] = json.dumps(cors_origins)
    if svc.database_pool is not None:
        env |= svc.database_pool.env()
    return {**env, **svc.env}
