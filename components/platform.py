"""The whole platform for one stack: composition only.

It creates the providers, decides each tier's context from settings, and hands one tier's
contracts (components/contracts.py) to the next: endpoints and backups from the data tier to the
app tier, clients from the app tier to the data tier, metrics endpoints to monitoring, backends
to the edge. No Kubernetes spec and no default is decided here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.app import tier as app_tier
from components.app.tier import AppTier, AppTierArgs
from components.config import Settings
from components.contracts import ExternalSecrets, MigrationPlan
from components.credentials import Credentials, CredentialsArgs, credential_values
from components.data.data_tier import DataTier, DataTierArgs
from components.edge.tier import Edge, EdgeArgs
from components.kit.context import TierContext
from components.kit.namespace import PlatformNamespace, PlatformNamespaceArgs
from components.monitoring.tier import Monitoring, MonitoringArgs, metrics_scraper

if TYPE_CHECKING:
    import pulumi_docker as docker

PLATFORM_VERSION = "0.1.0"


@dataclass(frozen=True)
class PlatformArgs:
    settings: Settings
    external: ExternalSecrets
    stack: str
    # Relative render directories are resolved against the project, wherever pulumi was started.
    project_dir: str


def kubernetes_provider(name: str, args: PlatformArgs, opts: pulumi.ResourceOptions) -> k8s.Provider:
    target = args.settings.target
    if target.mode == "render":
        assert target.render_directory is not None  # settings validation guarantees it
        # The provider wants an absolute directory; it writes one YAML file per object there.
        directory = os.path.normpath(os.path.join(args.project_dir, target.render_directory))
        return k8s.Provider(name, render_yaml_to_directory=directory, opts=opts)
    # ConfigMaps and Secrets change in place: every pod that reads one carries a digest of it and rolls
    # on a change, and a fixed-name object replaced (the provider's default) would be deleted first,
    # leaving a window where a starting pod cannot mount it.
    return k8s.Provider(
        name,
        context=target.context,
        kubeconfig=target.kubeconfig,
        enable_config_map_mutable=True,
        enable_secret_mutable=True,
        opts=opts,
    )


class Platform(pulumi.ComponentResource):
    app_namespace: pulumi.Output[str]
    service_hosts: dict[str, pulumi.Output[str]]
    service_images: dict[str, pulumi.Output[str]]
    render_directory: str | None
    edge_hosts: list[str]
    data_hosts: dict[str, str]

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:platform:Platform", name, None, opts)
        settings = args.settings
        own = pulumi.ResourceOptions(parent=self)
        self.kubernetes = kubernetes_provider(f"{name}-kubernetes", args, own)
        self.random = random.Provider(f"{name}-random", opts=own)
        self.docker = docker_provider(f"{name}-docker", own) if settings.builds() else None
        # Handed down to every descendant: no resource can fall back to an ambient kubeconfig.
        child = pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.kubernetes, "random": self.random})
        platform = TierContext(instance=f"{name}-{args.stack}", version=PLATFORM_VERSION, network=settings.network)
        app_ns = settings.namespaces.app

        credentials = Credentials(
            "credentials",
            CredentialsArgs(
                rotation=settings.secrets.rotation,
                length=settings.secrets.password_length,
                llm_api_key=args.external.llm_api_key,
                alert_webhook_url=args.external.alert_webhook_url,
                registry_password=args.external.registry_password,
            ),
            opts=child,
        )
        app_namespace = PlatformNamespace(
            "app", PlatformNamespaceArgs(name=app_ns, component="app", context=platform), opts=child
        )
        in_app_namespace = platform.waiting_for(app_namespace.namespace)
        scraper = metrics_scraper(settings.monitoring, platform.instance)
        migrations = settings.data.postgres.migrations if settings.runs_migrations() else None
        data = DataTier(
            "data",
            DataTierArgs(
                settings=settings.data,
                context=replace(platform, protect=settings.protects_data()),
                clients=app_tier.declared_clients(settings.app, migrations, app_ns, platform.instance),
                passwords={"postgres": credentials.generated["postgres"], "redis": credentials.generated["redis"]},
                external_credentials={
                    "postgres": args.external.postgres_password,
                    "redis": args.external.redis_password,
                    "chroma": args.external.chroma_token,
                },
                scraper=scraper,
                api_server_cidr=settings.monitoring.api_server_cidr,
                pooled=settings.pools_connections(),
            ),
            opts=child,
        )
        plans = {}
        if migrations is not None:
            plans[migrations.service] = MigrationPlan(
                command=migrations.command,
                timeout_seconds=migrations.timeout_seconds,
                endpoint=data.endpoints["postgres"],
                # A managed PostgreSQL (no in-cluster backups) keeps its own.
                backups=data.backups if settings.backs_up_before_migration() else None,
                depends_on=[data],
            )
        app = AppTier(
            "app",
            AppTierArgs(
                settings=settings.app,
                namespace=app_ns,
                context=in_app_namespace,
                edge_namespace=settings.edge.proxy_namespace,
                endpoints=data.endpoints,
                credentials=credential_values(credentials, data.endpoints),
                registry_password=args.external.registry_password,
                docker_provider=self.docker,
                project_dir=args.project_dir,
                metrics_scraper=scraper,
                migrations=plans,
            ),
            opts=child,
        )
        edge = Edge(
            "edge",
            EdgeArgs(
                settings=settings.edge,
                namespace=app_ns,
                context=in_app_namespace,
                backends=app_tier.backends(settings.app),
            ),
            opts=child,
        )
        data_namespaces = [data.namespace] if data.namespace else []
        Monitoring(
            "monitoring",
            MonitoringArgs(
                settings=settings.monitoring,
                context=replace(in_app_namespace, protect=settings.protects_monitoring()).waiting_for(
                    *([data.namespace_resource] if data.namespace_resource else [])
                ),
                environment=settings.environment,
                endpoints=[*app_tier.metrics_endpoints(settings.app, app_ns), *data.metrics],
                platform_namespaces=[app_ns, *data_namespaces],
                app_namespace=app_ns,
                grafana_admin_password=credentials.generated["grafana-admin"],
                receiver_secrets=args.external.receivers(),
            ),
            opts=child,
        )
        self.edge_hosts = edge.hosts
        self.data_hosts = {n: f"{e.host}:{e.port}" for n, e in sorted(data.endpoints.items())}
        self.app_namespace = app_namespace.name
        self.service_hosts = {n: s.dns_name for n, s in app.services.items()}
        self.service_images = {n: s.image for n, s in app.services.items()}
        self.render_directory = settings.target.render_directory
        self.register_outputs({"appNamespace": self.app_namespace, "serviceHosts": self.service_hosts})


def docker_provider(name: str, opts: pulumi.ResourceOptions) -> docker.Provider:
    # Loaded here: only a stack that builds images pays for importing the docker SDK (~0.1 s a run).
    import pulumi_docker as docker  # noqa: PLC0415

    return docker.Provider(name, opts=opts)
