"""One application service: the same kit for every service, built by the hardened builder.

ServiceAccount, ConfigMap (non-secret env), Secret (only the credentials this service references),
Deployment, ClusterIP Service, NetworkPolicy, and where configured an HPA and a PodDisruptionBudget.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as k8s

from components import network, workload
from components.config import BuildSettings, ServiceSettings
from components.data.migration import Migration, MigrationArgs, MigrationPlan
from components.image import image_build
from components.labels import image_version, selector_labels, standard_labels
from components.rollout import rollout_timeouts


@dataclass(frozen=True)
class AppServiceArgs:
    settings: ServiceSettings
    namespace: str
    instance: str
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
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    # Schema migrations run (after a backup, where planned) before this service's Deployment changes.
    migration: MigrationPlan | None = None


def config_checksum(env: Mapping[str, str], secret_env: Mapping[str, pulumi.Output[str]]) -> pulumi.Output[str]:
    """A digest of everything the pods read at start, so that a change to it rolls them.

    Hashing the secret values is what makes a rotation roll the pods. The digest of a high-entropy
    secret reveals nothing usable, so it is published unsecret (as Helm's checksum/secret idiom does);
    keeping it secret would mark the whole pod template secret and hide every diff.
    """
    secrets = pulumi.Output.all(**secret_env) if secret_env else pulumi.Output.from_input({})

    def digest(values: Mapping[str, str]) -> str:
        payload = json.dumps({"env": dict(env), "secrets": dict(values)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    return pulumi.Output.unsecret(secrets.apply(digest))


class AppService(pulumi.ComponentResource):
    """A Deployment and its kit for one service of the app tier."""

    dns_name: pulumi.Output[str]
    image: pulumi.Output[str]

    def __init__(self, name: str, args: AppServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:app:Service", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        svc = args.settings

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
            labels=standard_labels(name, args.instance, svc.component, version),
            selector=selector_labels(name, args.instance),
            config_map_name=f"{name}-env",
            secret_name=f"{name}-secrets" if args.secret_env else None,
            service_account_name=name,
            optional_secret_env=frozenset(k for k, v in args.secret_env.items() if v is None),
        )
        labels = identity.labels

        account = k8s.core.v1.ServiceAccount(
            f"{name}-serviceaccount",
            metadata=workload.metadata(identity.service_account_name, args.namespace, labels),
            # The app never calls the Kubernetes API; no token is mounted anywhere.
            automount_service_account_token=False,
            opts=child,
        )
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-env",
            metadata=workload.metadata(identity.config_map_name, args.namespace, labels),
            data=dict(sorted(args.env.items())),
            opts=child,
        )
        depends: list[pulumi.Resource] = [*args.depends_on, account, config_map]
        if identity.secret_name is not None:
            # Secret again, whatever the source said: the data must never be stored in plaintext state.
            string_data: dict[str, pulumi.Output[str]] = {}
            for env_name, value in sorted(set_secret_env.items()):
                string_data[env_name] = pulumi.Output.secret(value)
            secret = k8s.core.v1.Secret(
                f"{name}-secrets",
                metadata=workload.metadata(identity.secret_name, args.namespace, labels),
                type="Opaque",
                string_data=string_data,
                opts=child,
            )
            depends.append(secret)

        self.migration: Migration | None = None
        if args.migration is not None:
            plan = args.migration
            self.migration = Migration(
                f"{name}-migration",
                MigrationArgs(
                    service=name,
                    namespace=args.namespace,
                    instance=args.instance,
                    image=image,
                    command=plan.command,
                    timeout_seconds=plan.timeout_seconds,
                    postgres=plan.postgres,
                    endpoint=plan.endpoint,
                    config_map_name=identity.config_map_name,
                    secret_name=identity.secret_name,
                    run_as_user=svc.run_as_user,
                    backup=plan.backup,
                    depends_on=[*depends, *plan.depends_on],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            depends.append(self.migration.job)

        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=workload.metadata(name, args.namespace, labels),
            spec=workload.deployment_spec(
                identity,
                svc,
                image,
                config_checksum(args.env, set_secret_env),
                args.termination_grace_period_seconds,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends, custom_timeouts=rollout_timeouts(svc)),
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=workload.metadata(name, args.namespace, labels),
            spec=workload.service_spec(identity, svc),
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-networkpolicy",
            metadata=workload.metadata(name, args.namespace, labels),
            spec=dict(args.network_policy),
            opts=child,
        )
        if svc.autoscaling.enabled:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-hpa",
                metadata=workload.metadata(name, args.namespace, labels),
                spec=workload.hpa_spec(identity, svc.autoscaling),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, deployment]),
            )
        if workload.needs_disruption_budget(svc):
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb",
                metadata=workload.metadata(name, args.namespace, labels),
                spec=workload.pdb_spec(identity),
                opts=child,
            )

        self.dns_name = pulumi.Output.from_input(f"{name}.{args.namespace}.svc.cluster.local")
        self.image = pulumi.Output.from_input(image)
        self.register_outputs({"dnsName": self.dns_name, "image": self.image})

    def _build_image(self, name: str, build: BuildSettings, args: AppServiceArgs) -> pulumi.Output[str]:
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
    endpoints: Mapping[str, network.DataEndpoint],
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
    return {**env, **svc.env}
