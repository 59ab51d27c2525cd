"""The data tier: PostgreSQL, Redis and Chroma in their own namespace, or managed services outside.

Each store publishes a typed DataEndpoint (host, port, where its credential is); the app tier
consumes those instead of settings. In-cluster stores share one namespace (PSS restricted,
default-deny) and a PriorityClass above the app's, so app pods never preempt a store. External
stores create nothing here: their endpoint points at the managed service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pulumi

from components.config import DataSettings
from components.contracts import Client, DataEndpoint, MetricsEndpoint, PreMigrationBackups
from components.data.chroma import Chroma, ChromaArgs
from components.data.pooler import NAME as POOLER_NAME
from components.data.pooler import PgBouncer, PgBouncerArgs, clients_with_pooler
from components.data.postgres import EXPORTER_PORT as POSTGRES_EXPORTER_PORT
from components.data.postgres import Postgres, PostgresArgs
from components.data.redis import EXPORTER_PORT as REDIS_EXPORTER_PORT
from components.data.redis import Redis, RedisArgs
from components.data.store_workload import StoreContext
from components.kit.context import TierContext
from components.kit.namespace import PlatformNamespace, PlatformNamespaceArgs
from components.kit.objects import Manifest, register
from components.labels import standard_labels

# Logical names of the stores' components. Renaming one? Put the old name in FORMER_NAMES: the
# engine then moves every resource under it instead of replacing the StatefulSet and its data.
STORE_NAMES: dict[str, str] = {"postgres": "postgres", "redis": "redis", "chroma": "chroma"}
FORMER_NAMES: dict[str, tuple[str, ...]] = {"postgres": (), "redis": (), "chroma": ()}


@dataclass(frozen=True)
class DataTierArgs:
    settings: DataSettings
    # ctx.protect: the stores, their claims and the namespace are protected and kept on delete.
    context: TierContext
    # Declared clients per store (the app's services, migration and backup Jobs).
    clients: Mapping[str, Sequence[Client]]
    # Generated passwords (secret Outputs) of the in-cluster stores.
    passwords: Mapping[str, pulumi.Output[str]]
    # Secret config of external stores (postgresPassword, redisPassword, chromaToken); None where unset.
    external_credentials: Mapping[str, pulumi.Output[str] | None]
    scraper: Mapping[str, str] | None
    # Where the Kubernetes API server lies (monitoring.apiServerCidr): egress of pods that call it.
    api_server_cidr: str = "0.0.0.0/0"
    # PgBouncer in front of PostgreSQL (Settings.pools_connections()).
    pooled: bool = False


def external_endpoint(store: str, settings: DataSettings, credential: pulumi.Output[str] | None) -> DataEndpoint:
    stores = settings.stores()
    ext = stores[store].external
    assert ext is not None  # settings validation guarantees it in mode external
    database: str | None = None
    user: str | None = None
    if store == "postgres":
        database, user = settings.postgres.database, settings.postgres.user
    elif store == "redis":
        database = str(settings.redis.database)
    return DataEndpoint(
        name=store,
        host=ext.host,
        port=ext.port,
        namespace=None,
        cidr=ext.cidr,
        credential=pulumi.Output.secret(credential) if credential is not None else None,
        database=database,
        user=user,
        tls=ext.tls,
    )


def priority_class_name(settings: DataSettings) -> str:
    return f"{settings.namespace}-stores"


class DataTier(pulumi.ComponentResource):
    endpoints: dict[str, DataEndpoint]
    metrics: list[MetricsEndpoint]
    namespace: str | None
    namespace_resource: pulumi.Resource | None
    # In-cluster PostgreSQL with backups: what a migration asks for a backup first; else None.
    backups: PreMigrationBackups | None

    def __init__(self, name: str, args: DataTierArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:data:DataTier", name, None, opts)
        s = args.settings
        self.endpoints = {}
        self.metrics = []
        self.namespace = None
        self.namespace_resource = None
        self.backups = None
        for store, settings in s.stores().items():
            if settings.mode == "external":
                self.endpoints[store] = external_endpoint(store, s, args.external_credentials.get(store))
        in_cluster = s.in_cluster()
        if in_cluster:
            self._in_cluster(name, args, in_cluster)
        self.register_outputs({"stores": sorted(self.endpoints)})

    def _in_cluster(self, name: str, args: DataTierArgs, stores: list[str]) -> None:
        s, tier = args.settings, args.context
        ns = s.namespace
        namespace = PlatformNamespace(
            "data",
            PlatformNamespaceArgs(name=ns, component="data", context=tier, holds_data=True),
            opts=pulumi.ResourceOptions(parent=self),
        )
        labels = standard_labels(priority_class_name(s), tier.instance, "data", tier.version)
        priority = Manifest(
            f"{name}-priority",
            "PriorityClass",
            {
                "metadata": {"name": priority_class_name(s), "labels": labels},
                "value": s.priority,
                "global_default": False,
                "preemption_policy": "PreemptLowerPriority",
                "description": "Data stores of the support platform: never preempted by app pods.",
            },
        )
        registered = register([priority], self, tier)
        self.namespace = ns
        self.namespace_resource = namespace.namespace
        stores_tier = tier.waiting_for(namespace.namespace, registered[priority.logical])

        def context(store: str) -> StoreContext:
            return StoreContext(
                tier=stores_tier,
                namespace=ns,
                clients=list(args.clients.get(store, ())),
                scraper=args.scraper,
                priority_class=priority_class_name(s),
            )

        def options(store: str) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(
                parent=self, aliases=[pulumi.Alias(name=old) for old in FORMER_NAMES.get(store, ())]
            )

        if "postgres" in stores:
            # With the pooler, PostgreSQL admits PgBouncer and PgBouncer the app's clients.
            direct, pooled = clients_with_pooler(args.clients, args.pooled, ns, tier.instance)
            pg = Postgres(
                STORE_NAMES["postgres"],
                PostgresArgs(s.postgres, replace(context("postgres"), clients=direct), args.passwords["postgres"]),
                opts=options("postgres"),
            )
            self.endpoints["postgres"] = pg.endpoint
            if args.pooled:
                pooler = PgBouncer(
                    POOLER_NAME,
                    PgBouncerArgs(
                        s.postgres,
                        replace(context("postgres"), clients=pooled),
                        args.passwords["postgres"],
                        pg.endpoint,
                    ),
                    opts=pulumi.ResourceOptions(parent=self),
                )
                self.endpoints["postgres"] = pooler.endpoint
            if s.postgres.backup.enabled:
                self.backups = pg
            if s.postgres.exporter.enabled:
                self.metrics.append(
                    MetricsEndpoint("postgres-exporter", ns, "postgres", "metrics", "/metrics", POSTGRES_EXPORTER_PORT)
                )
        if "redis" in stores:
            rd = Redis(
                STORE_NAMES["redis"],
                RedisArgs(s.redis, context("redis"), args.passwords["redis"]),
                opts=options("redis"),
            )
            self.endpoints["redis"] = rd.endpoint
            if s.redis.exporter.enabled:
                self.metrics.append(
                    MetricsEndpoint("redis-exporter", ns, "redis", "metrics", "/metrics", REDIS_EXPORTER_PORT)
                )
        if "chroma" in stores:
            ch = Chroma(
                STORE_NAMES["chroma"],
                ChromaArgs(s.chroma, context("chroma"), args.api_server_cidr),
                opts=options("chroma"),
            )
            self.endpoints["chroma"] = ch.endpoint
