"""The data tier: PostgreSQL, Redis and Chroma in their own namespace, or managed services outside.

Each store publishes a typed DataEndpoint (host, port, where its credential is); the app tier
consumes those instead of settings. In-cluster stores share one namespace (PSS restricted,
default-deny) and a PriorityClass above the app's, so app pods never preempt a store. External
stores create nothing here: their endpoint points at the managed service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.config import DataSettings, NetworkSettings
from components.data.chroma import Chroma, ChromaArgs
from components.data.postgres import Postgres, PostgresArgs
from components.data.redis import Redis, RedisArgs
from components.data.store import Client, StoreContext
from components.labels import standard_labels
from components.monitoring.prometheus_config import MetricsEndpoint
from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from components.network import DataEndpoint

# Logical names of the stores' components. Renaming one? Put the old name in FORMER_NAMES: the
# engine then moves every resource under it instead of replacing the StatefulSet and its data.
STORE_NAMES: dict[str, str] = {"postgres": "postgres", "redis": "redis", "chroma": "chroma"}
FORMER_NAMES: dict[str, tuple[str, ...]] = {"postgres": (), "redis": (), "chroma": ()}


@dataclass(frozen=True)
class DataTierArgs:
    settings: DataSettings
    instance: str
    version: str
    network: NetworkSettings
    # Declared clients per store (the app's services, migration and backup Jobs).
    clients: Mapping[str, Sequence[Client]]
    # Generated passwords (secret Outputs) of the in-cluster stores.
    passwords: Mapping[str, pulumi.Output[str]]
    # Secret config of external stores (postgresPassword, redisPassword, chromaToken); None where unset.
    external_credentials: Mapping[str, pulumi.Output[str] | None]
    scraper: Mapping[str, str] | None
    protect: bool
    # Where the Kubernetes API server lies (monitoring.apiServerCidr): egress of pods that call it.
    api_server_cidr: str = "0.0.0.0/0"


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
    namespace_resource: k8s.core.v1.Namespace | None
    backup_selector: dict[str, str] | None

    def __init__(self, name: str, args: DataTierArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:data:DataTier", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        self.endpoints = {}
        self.metrics = []
        self.namespace = None
        self.namespace_resource = None
        self.backup_selector = None
        for store, settings in s.stores().items():
            if settings.mode == "external":
                self.endpoints[store] = external_endpoint(store, s, args.external_credentials.get(store))
        in_cluster = s.in_cluster()
        if in_cluster:
            self._in_cluster(name, args, in_cluster, child)
        self.register_outputs({"stores": sorted(self.endpoints)})

    def _in_cluster(self, name: str, args: DataTierArgs, stores: list[str], child: pulumi.ResourceOptions) -> None:
        s = args.settings
        ns = s.namespace
        namespace = PlatformNamespace(
            "data",
            PlatformNamespaceArgs(
                name=ns,
                instance=args.instance,
                component="data",
                version=args.version,
                network=args.network,
                holds_data=True,
                protect=args.protect,
            ),
            opts=child,
        )
        priority = k8s.scheduling.v1.PriorityClass(
            f"{name}-priority",
            metadata={
                "name": priority_class_name(s),
                "labels": standard_labels(priority_class_name(s), args.instance, "data", args.version),
            },
            value=s.priority,
            global_default=False,
            preemption_policy="PreemptLowerPriority",
            description="Data stores of the support platform: never preempted by app pods.",
            opts=child,
        )
        self.namespace = ns
        self.namespace_resource = namespace.namespace

        def context(store: str) -> StoreContext:
            return StoreContext(
                namespace=ns,
                instance=args.instance,
                clients=list(args.clients.get(store, ())),
                scraper=args.scraper,
                monitoring_namespace=args.network.monitoring_namespace,
                priority_class=priority_class_name(s),
                protect=args.protect,
                depends_on=[namespace.namespace, priority],
            )

        def options(store: str) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(
                parent=self, aliases=[pulumi.Alias(name=old) for old in FORMER_NAMES.get(store, ())]
            )

        if "postgres" in stores:
            pg = Postgres(
                STORE_NAMES["postgres"],
                PostgresArgs(s.postgres, context("postgres"), args.passwords["postgres"]),
                opts=options("postgres"),
            )
            self.endpoints["postgres"] = pg.endpoint
            if s.postgres.backup.enabled:
                self.backup_selector = pg.backup_selector
            if s.postgres.exporter.enabled:
                self.metrics.append(MetricsEndpoint("postgres-exporter", ns, "postgres", "metrics", "/metrics", 9187))
        if "redis" in stores:
            rd = Redis(
                STORE_NAMES["redis"],
                RedisArgs(s.redis, context("redis"), args.passwords["redis"]),
                opts=options("redis"),
            )
            self.endpoints["redis"] = rd.endpoint
            if s.redis.exporter.enabled:
                self.metrics.append(MetricsEndpoint("redis-exporter", ns, "redis", "metrics", "/metrics", 9121))
        if "chroma" in stores:
            ch = Chroma(
                STORE_NAMES["chroma"],
                ChromaArgs(s.chroma, context("chroma"), args.api_server_cidr),
                opts=options("chroma"),
            )
            self.endpoints["chroma"] = ch.endpoint
