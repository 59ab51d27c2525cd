"""The root of the settings model: where the stack deploys, its namespaces, credentials policy, and
the rules that span tiers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from components.config.app import AppSettings
from components.config.base import _DIGEST, DnsLabel, Environment, _cross_field, _Strict, pins_required
from components.config.build import BuildSettings
from components.config.capacity import connection_budget_problem
from components.config.data import ChromaSettings, DataSettings, PostgresSettings
from components.config.edge import EdgeSettings
from components.config.monitoring import MonitoringSettings
from components.config.network import NetworkSettings


class TargetSettings(_Strict):
    """Where the Kubernetes provider sends objects: a render directory or a cluster context."""

    mode: Literal["render", "cluster"]
    """render: write manifests to renderDirectory (dev only); cluster: deploy to a kubeconfig context."""
    render_directory: str | None = None
    """Render mode: directory for the manifests, relative to the project."""
    context: str | None = None
    """Cluster mode: the kubeconfig context to deploy to."""
    kubeconfig: str | None = None
    """Cluster mode: path of the kubeconfig file; default: the usual lookup ($KUBECONFIG, ~/.kube/config)."""

    @field_validator("kubeconfig")
    @classmethod
    def _path_not_contents(cls, value: str | None) -> str | None:
        # Contents carry credentials and this key is committed in plaintext: only a path belongs here.
        if value is not None and ("\n" in value or "apiVersion" in value or "client-key-data" in value):
            raise PydanticCustomError(
                "format",
                "looks like kubeconfig contents, which hold credentials and would be committed in plaintext; "
                "give the path of the file instead (or leave it out and set KUBECONFIG)",
                {},
            )
        return value

    @model_validator(mode="after")
    def _mode_fields(self) -> TargetSettings:
        if self.mode == "render":
            if not self.render_directory:
                raise _cross_field("renderDirectory", "mode 'render' needs renderDirectory, e.g. rendered/dev")
            if self.context or self.kubeconfig:
                raise _cross_field(
                    "context",
                    "mode 'render' cannot be combined with context/kubeconfig; remove them or use mode 'cluster'",
                )
        else:
            if not self.context:
                raise _cross_field(
                    "context", "mode 'cluster' needs the kubeconfig context to deploy to, e.g. staging-admin"
                )
            if self.render_directory:
                raise _cross_field("renderDirectory", "renderDirectory only applies to mode 'render'; remove it")
        return self


class NamespaceSettings(_Strict):
    app: DnsLabel = "support-app"
    """Namespace of the app tier (created, with PSS restricted and default-deny)."""

    @field_validator("app")
    @classmethod
    def _own_namespace(cls, value: str) -> str:
        # The platform labels, locks down and may delete its namespaces: never a shared system one.
        if value == "default" or value.startswith("kube-"):
            raise PydanticCustomError(
                "format", "'{value}' is a shared system namespace; use one of the platform's own", {"value": value}
            )
        return value


class SecretsSettings(_Strict):
    rotation: Annotated[int, Field(ge=0)] = 0
    """Keeper of every generated credential: bump it to rotate them all."""
    password_length: Annotated[int, Field(ge=24, le=128)] = 32
    """Length of generated passwords and tokens (alphanumeric)."""


class Settings(_Strict):
    environment: Environment
    """dev, staging or production (default: the stack name); decides the production-only rules."""
    target: TargetSettings
    namespaces: NamespaceSettings = NamespaceSettings()
    secrets: SecretsSettings = SecretsSettings()
    data: DataSettings = DataSettings()
    edge: EdgeSettings = EdgeSettings()
    network: NetworkSettings = NetworkSettings()
    app: AppSettings
    monitoring: MonitoringSettings = MonitoringSettings()

    @model_validator(mode="after")
    def _production_edge(self, info: ValidationInfo) -> Settings:
        if self.environment == "production" and not self.edge.hosts:
            raise _cross_field("edge.hosts", "production needs at least one public host, served with TLS")
        if self.edge.hosts and not (self.edge.tls.issuer or self.edge.tls.secret_name):
            raise _cross_field(
                "edge.tls",
                "every host must be served with TLS: set issuer (a cert-manager issuer, e.g. "
                "letsencrypt-production) or secretName (an existing TLS Secret)",
            )
        if pins_required(info) and self.monitoring.mode == "bundled":
            images = self.monitoring.images
            deployed = {"prometheus": images.prometheus, "alertmanager": images.alertmanager, "grafana": images.grafana}
            if self.monitoring.kube_state_metrics.enabled:
                deployed["kubeStateMetrics"] = images.kube_state_metrics
            for server, image in deployed.items():
                if not _DIGEST.search(image):
                    raise _cross_field(
                        f"monitoring.images.{server}",
                        "production requires an image pinned by digest, got '{image}'; use "
                        "repository:tag@sha256:<digest> (`make pin-images STACK=production CHECK=1` tells "
                        "whether the registry serves it)",
                        image=image,
                    )
        if self.environment != "dev" and self.target.mode == "render":
            raise _cross_field("target.mode", "only dev may render instead of deploying; use mode 'cluster'")
        return self

    @model_validator(mode="after")
    def _edge_routes(self) -> Settings:
        if not self.edge.hosts:
            return self
        services = self.app.enabled_services()
        for path, target in self.edge.routes.items():
            svc = services.get(target)
            if svc is None or not svc.expose:
                exposed = sorted(n for n, s in services.items() if s.expose)
                raise _cross_field(
                    f"edge.routes.{path}",
                    "'{target}' is not an exposed service, so it cannot be routed (workers never are); "
                    "routable: {exposed}",
                    target=target,
                    exposed=", ".join(exposed) or "none",
                )
        unrouted = sorted(n for n, s in services.items() if s.expose and n not in self.edge.routes.values())
        if unrouted:
            raise _cross_field(
                "edge.routes",
                "exposed service(s) {names} have no route: add a path for each, or set expose: false so the "
                "edge cannot reach them",
                names=", ".join(unrouted),
            )
        stream = self.app.max_stream_seconds
        if self.edge.timeouts.backend_request_seconds <= stream:
            raise _cross_field(
                "edge.timeouts.backendRequestSeconds",
                "{value}s would cut streamed replies (app.maxStreamSeconds is {stream}s); use more than {stream}s",
                value=self.edge.timeouts.backend_request_seconds,
                stream=stream,
            )
        return self

    @model_validator(mode="after")
    def _data_connections(self, info: ValidationInfo) -> Settings:
        stores = self.data.stores()
        for name, svc in self.app.enabled_services().items():
            for target in svc.connects_to:
                if target in stores and stores[target].mode == "disabled":
                    raise _cross_field(
                        f"app.services.{name}.connectsTo",
                        "'{name}' connects to {target}, which data.{target}.mode disables; remove {target} "
                        "from connectsTo and drop the secretEnv that uses it (e.g. `REDIS_URL: null`), or "
                        "enable the store",
                        name=name,
                        target=target,
                    )
        pg = self.data.postgres
        if pg.mode != "disabled" and pg.migrations.enabled:
            runner = self.app.enabled_services().get(pg.migrations.service)
            if runner is None or "postgres" not in runner.connects_to:
                raise _cross_field(
                    "data.postgres.migrations.service",
                    "'{service}' must be an enabled service that connects to postgres (its image and "
                    "DATABASE_URL run the migration); or set migrations.enabled: false",
                    service=pg.migrations.service,
                )
        if pins_required(info):
            for store, settings in stores.items():
                if settings.mode != "in-cluster":
                    continue
                images = {"image": settings.image}
                exporter = getattr(settings, "exporter", None)
                if exporter is not None and exporter.enabled:
                    images["exporter.image"] = exporter.image
                if isinstance(settings, ChromaSettings) and settings.snapshots.volume_snapshot_class is not None:
                    images["snapshots.image"] = settings.snapshots.image
                if isinstance(settings, PostgresSettings) and self.pools_connections():
                    images["pooler.image"] = settings.pooler.image
                for key, image in images.items():
                    if not _DIGEST.search(image):
                        raise _cross_field(
                            f"data.{store}.{key}",
                            "production requires an image pinned by digest, got '{image}'; use "
                            "repository:tag@sha256:<digest> (`make pin-images STACK=production CHECK=1` tells "
                            "whether the registry serves it)",
                            image=image,
                        )
        if self.data.namespace in (self.namespaces.app, self.network.monitoring_namespace):
            raise _cross_field(
                "data.namespace",
                "'{ns}' is already the app's or monitoring's namespace; the stores need their own",
                ns=self.data.namespace,
            )
        return self

    @model_validator(mode="after")
    def _connection_budget(self) -> Settings:
        problem = connection_budget_problem(self)
        if problem is not None:
            raise _cross_field(*problem)
        return self

    # Production defaults, resolved here once: every component takes the answer, none asks the
    # environment itself.
    def protects_data(self) -> bool:
        """protect + retain_on_delete on the stores, their claims and namespace (data.protect)."""
        return self.data.protect if self.data.protect is not None else self.environment == "production"

    def protects_monitoring(self) -> bool:
        """protect + retain_on_delete on the bundled servers' StatefulSets (their history and silences)."""
        return self.environment == "production"

    def backs_up_before_migration(self) -> bool:
        """A pg_dump before every migration (data.postgres.migrations.backupFirst)."""
        backup_first = self.data.postgres.migrations.backup_first
        return backup_first if backup_first is not None else self.environment == "production"

    def pools_connections(self) -> bool:
        """PgBouncer in front of the in-cluster PostgreSQL (data.postgres.pooler.enabled)."""
        pg = self.data.postgres
        enabled = pg.pooler.enabled if pg.pooler.enabled is not None else self.environment == "production"
        return enabled and pg.mode == "in-cluster"

    def runs_migrations(self) -> bool:
        return self.data.postgres.mode != "disabled" and self.data.postgres.migrations.enabled

    def builds(self) -> dict[str, BuildSettings]:
        return {n: s.build for n, s in self.app.enabled_services().items() if s.build is not None}
