"""The whole platform for one stack: composition only, no Kubernetes specs of its own."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.app_tier import AppTier, AppTierArgs
from components.config import DATA_STORES, Settings
from components.data.data_tier import DataTier, DataTierArgs, priority_class_name
from components.data.migration import MigrationPlan, PreMigrationBackup, migration_name, migration_selector
from components.data.store import Client
from components.edge import Backend, Edge, EdgeArgs
from components.labels import selector_labels
from components.monitoring.monitoring import Monitoring, MonitoringArgs, service_endpoints
from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from components.secrets import Credentials, CredentialsArgs, credential_values

PLATFORM_VERSION = "0.1.0"


@dataclass(frozen=True)
class ExternalSecrets:
    """Secret config values (Pulumi secret Outputs); None where unset, which settings allow only in dev."""

    llm_api_key: pulumi.Output[str] | None = None
    alert_webhook_url: pulumi.Output[str] | None = None
    registry_password: pulumi.Output[str] | None = None
    # External stores' credentials: postgresPassword, redisPassword, chromaToken.
    postgres_password: pulumi.Output[str] | None = None
    redis_password: pulumi.Output[str] | None = None
    chroma_token: pulumi.Output[str] | None = None


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
    return k8s.Provider(name, context=target.context, kubeconfig=target.kubeconfig, opts=opts)


def data_clients(settings: Settings, instance: str) -> dict[str, list[Client]]:
    """Per store, the pods declared to connect to it: services by `connectsTo`, and the migration
    Job of the service that runs migrations. Only these reach a store."""
    app_ns = settings.namespaces.app
    clients: dict[str, list[Client]] = {store: [] for store in DATA_STORES}
    for name, svc in settings.app.enabled_services().items():
        for target in svc.connects_to:
            if target in clients:
                clients[target].append(Client(name, app_ns, selector_labels(name, instance)))
    migrations = settings.data.postgres.migrations
    if settings.data.postgres.mode != "disabled" and migrations.enabled:
        name = migration_name(migrations.service)
        clients["postgres"].append(Client(name, app_ns, migration_selector(migrations.service, instance)))
    return clients


def metrics_scraper(settings: Settings, instance: str) -> dict[str, str] | None:
    """The pods allowed to scrape the app's metrics ports: the bundled Prometheus, or none."""
    if settings.monitoring.mode == "bundled":
        return selector_labels("prometheus", instance)
    if settings.monitoring.mode == "operator":
        return dict(settings.monitoring.operator.prometheus_pod_labels)
    return None


def migration_plans(settings: Settings, data: DataTier) -> dict[str, MigrationPlan]:
    """The migration of the configured service, with a backup first where settings ask for one
    (default: production) and PostgreSQL runs in-cluster (a managed service keeps its own)."""
    pg = settings.data.postgres
    if pg.mode == "disabled" or not pg.migrations.enabled:
        return {}
    backup_first = pg.migrations.backup_first
    if backup_first is None:
        backup_first = settings.environment == "production"
    backup = None
    if backup_first and pg.mode == "in-cluster" and data.namespace and data.backup_selector:
        backup = PreMigrationBackup(data.namespace, priority_class_name(settings.data), data.backup_selector)
    plan = MigrationPlan(
        command=pg.migrations.command,
        timeout_seconds=pg.migrations.timeout_seconds,
        postgres=pg,
        endpoint=data.endpoints["postgres"],
        backup=backup,
        depends_on=[data],
    )
    return {pg.migrations.service: plan}


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
        self.docker: docker.Provider | None = docker.Provider(f"{name}-docker", opts=own) if settings.builds() else None
        # Handed down to every descendant: no resource can fall back to an ambient kubeconfig.
        child = pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.kubernetes, "random": self.random})
        instance = f"{name}-{args.stack}"

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
            "app",
            PlatformNamespaceArgs(
                name=settings.namespaces.app,
                instance=instance,
                component="app",
                version=PLATFORM_VERSION,
                network=settings.network,
            ),
            opts=child,
        )
        protect = settings.data.protect if settings.data.protect is not None else settings.environment == "production"
        scraper = metrics_scraper(settings, instance)
        data = DataTier(
            "data",
            DataTierArgs(
                settings=settings.data,
                instance=instance,
                version=PLATFORM_VERSION,
                network=settings.network,
                clients=data_clients(settings, instance),
                passwords={"postgres": credentials.generated["postgres"], "redis": credentials.generated["redis"]},
                external_credentials={
                    "postgres": args.external.postgres_password,
                    "redis": args.external.redis_password,
                    "chroma": args.external.chroma_token,
                },
                scraper=scraper,
                protect=protect,
                api_server_cidr=settings.monitoring.api_server_cidr,
            ),
            opts=child,
        )
        app = AppTier(
            "app",
            AppTierArgs(
                settings=settings.app,
                namespace=settings.namespaces.app,
                instance=instance,
                network=settings.network,
                edge_namespace=settings.edge.proxy_namespace,
                endpoints=data.endpoints,
                credentials=credential_values(credentials, data.endpoints),
                registry_password=args.external.registry_password,
                docker_provider=self.docker,
                project_dir=args.project_dir,
                namespace_resource=app_namespace.namespace,
                metrics_scraper=scraper,
                migrations=migration_plans(settings, data),
            ),
            opts=child,
        )
        exposed = {n: svc for n, svc in settings.app.enabled_services().items() if svc.expose}
        edge = Edge(
            "edge",
            EdgeArgs(
                settings=settings.edge,
                namespace=settings.namespaces.app,
                instance=instance,
                version=PLATFORM_VERSION,
                backends={n: Backend(service=n, port=svc.http_port) for n, svc in exposed.items()},
                depends_on=[app_namespace.namespace],
            ),
            opts=child,
        )
        data_namespaces = [data.namespace] if data.namespace else []
        Monitoring(
            "monitoring",
            MonitoringArgs(
                settings=settings.monitoring,
                network=settings.network,
                instance=instance,
                version=PLATFORM_VERSION,
                environment=settings.environment,
                endpoints=[
                    *service_endpoints(settings.app.enabled_services(), settings.namespaces.app),
                    *data.metrics,
                ],
                platform_namespaces=[settings.namespaces.app, *data_namespaces],
                app_namespace=settings.namespaces.app,
                grafana_admin_password=credentials.generated["grafana-admin"],
                receiver_secrets={"alertWebhookUrl": args.external.alert_webhook_url},
                protect=settings.environment == "production",
                depends_on=[app_namespace.namespace, *([data.namespace_resource] if data.namespace_resource else [])],
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
