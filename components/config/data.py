"""Settings of the data tier: PostgreSQL, Redis and Chroma, each in-cluster, external or disabled."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from components.config.app import ResourceSettings
from components.config.base import (
    Cidr,
    DataImage,
    DnsLabel,
    DnsName,
    MemoryQuantity,
    Port,
    _check,
    _cross_field,
    _Strict,
)
from components.config.pooler import PoolerSettings
from components.config.quantity import memory_bytes, quantity_bytes

StoreMode = Literal["in-cluster", "external", "disabled"]
DATA_STORES = ("postgres", "redis", "chroma")
# Secret config keys (`pulumi config set --secret`) an external store takes its credential from.
EXTERNAL_STORE_SECRETS: dict[str, str] = {
    "postgres": "postgresPassword",
    "redis": "redisPassword",
    "chroma": "chromaToken",
}

# What the Service, the probes, the mounts and the password policy rely on: not a tuning knob. The
# settings refuse them and the postgresql.conf renderer (components/data/server_config.py) too.
PG_FIXED: Final = frozenset(
    {
        "listen_addresses",
        "port",
        "unix_socket_directories",
        "password_encryption",
        "hba_file",
        "ident_file",
        "config_file",
        "data_directory",
        "logging_collector",
        "log_destination",
    }
)
# The eviction policies Redis knows: the settings' type, and what the redis.conf renderer accepts.
RedisEvictionPolicy = Literal[
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
]

_PG_PARAMETER = re.compile(r"^[a-z_][a-z0-9_.]*$")
_CRON = re.compile(r"^(\S+\s+){4}\S+$")


StorageSize = Annotated[str, _check(re.compile(r"^[1-9][0-9]*(Mi|Gi|Ti)$"), "storage size", "20Gi")]


class StorageSettings(_Strict):
    """The volume of a store: one PersistentVolumeClaim per replica. Kubernetes cannot change a
    StatefulSet's claim template in place; the settings refuse changes to it once deployed."""

    size: StorageSize
    """Requested size (Mi, Gi or Ti)."""
    storage_class: DnsName | None = None
    """StorageClass of the claims; default: the cluster's default class."""


class ExporterSettings(_Strict):
    enabled: bool = True
    """Run the Prometheus exporter next to the store (its metrics feed the data-tier alerts)."""
    image: DataImage
    """Exporter image (production: pinned by digest)."""


class ExternalSettings(_Strict):
    """A managed service instead of the in-cluster store: nothing is deployed for it."""

    host: DnsName
    """DNS name of the managed service."""
    port: Port
    cidr: Cidr
    """Where its addresses lie: the app's egress is allowed to this block only."""
    tls: bool = True
    """Connect with TLS (sslmode=verify-full for PostgreSQL, rediss:// for Redis, https for Chroma)."""


def _tunable(parameters: dict[str, str | int]) -> dict[str, str | int]:
    for name, value in parameters.items():
        if not _PG_PARAMETER.match(name):
            raise PydanticCustomError(
                "format", "'{name}' is not a PostgreSQL parameter name; example: max_connections", {"name": name}
            )
        if name in PG_FIXED:
            raise PydanticCustomError(
                "reserved",
                "'{name}' is set by the platform (listening, sockets, files and authentication); remove it",
                {"name": name},
            )
        if isinstance(value, str) and any(ord(c) < 32 for c in value):
            raise PydanticCustomError(
                "format", "the value of '{name}' contains a line break or control character", {"name": name}
            )
    return parameters


class MigrationSettings(_Strict):
    enabled: bool = True
    """Run the api image's migration command in a Job before the api Deployment changes."""
    command: Annotated[list[str], Field(min_length=1)] = ["alembic", "upgrade", "head"]
    """Migration command, run with the api's image and DATABASE_URL."""
    service: DnsLabel = "api"
    """The service whose image and credentials run the migration."""
    backup_first: bool | None = None
    """Take a pg_dump before every migration; default: on in production, off elsewhere."""
    timeout_seconds: Annotated[int, Field(ge=60, le=86400)] = 1800
    """How long a migration (and the backup before it) may run before the Job is failed."""


class BackupSettings(_Strict):
    enabled: bool = True
    """A CronJob writes a compressed, checksummed pg_dump to the backup volume."""
    schedule: Annotated[str, _check(_CRON, "cron schedule (five fields)", "17 3 * * *")] = "17 3 * * *"
    """When the CronJob runs (cron syntax, the cluster's time zone unless timeZone is set)."""
    time_zone: str = "Etc/UTC"
    """Time zone of the schedule."""
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 7
    """Dumps older than this are pruned (the newest is always kept); BackupMissing fires when none
    is younger than this."""
    storage: StorageSettings = StorageSettings(size="20Gi")
    """The backup volume (a PersistentVolumeClaim of its own, protected like the data)."""


class PostgresSettings(_Strict):
    mode: StoreMode = "in-cluster"
    """in-cluster: a StatefulSet here; external: a managed service (secret config postgresPassword);
    disabled: none (no service may connect to it)."""
    image: DataImage = (
        "docker.io/library/postgres:17.11-bookworm"
        "@sha256:639ab7ceb90e13123085b741fb31ef493fba25463002f6da665352e7b534b652"
    )
    """Official PostgreSQL image, Debian variant (production: pinned by digest)."""
    replicas: Annotated[int, Field(ge=1, le=1)] = 1
    """One primary: streaming replicas are not built (use mode external for a managed HA service)."""
    database: DnsLabel = "support"
    """Database the app uses."""
    user: DnsLabel = "support"
    """Database user of the app (its password is generated, or postgresPassword when external)."""
    storage: StorageSettings = StorageSettings(size="20Gi")
    resources: ResourceSettings = ResourceSettings.model_validate(
        {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
    )
    parameters: Annotated[dict[str, str | int], AfterValidator(_tunable)] = {
        "max_connections": 200,
        "shared_buffers": "256MB",
        "effective_cache_size": "768MB",
        "work_mem": "4MB",
        "maintenance_work_mem": "64MB",
        "log_min_duration_statement": 1000,
    }
    """postgresql.conf tuning (max_connections, shared_buffers, ...), merged over these defaults; `name: null`
    drops one."""
    exporter: ExporterSettings = ExporterSettings(
        image="quay.io/prometheuscommunity/postgres-exporter:v0.17.1"
        "@sha256:38606faa38c54787525fb0ff2fd6b41b4cfb75d455c1df294927c5f611699b17"
    )
    migrations: MigrationSettings = MigrationSettings()
    backup: BackupSettings = BackupSettings()
    pooler: PoolerSettings = PoolerSettings()
    """PgBouncer between the app and PostgreSQL, for stacks whose services need more connections than
    max_connections allows (in-cluster mode)."""
    admin_connections: Annotated[int, Field(ge=0, le=100)] = 2
    """Connections the budget keeps free for an operator's psql and tools outside the platform."""
    external: ExternalSettings | None = None
    """mode external: where the managed service is."""

    @model_validator(mode="after")
    def _external(self) -> PostgresSettings:
        if self.mode == "external" and self.external is None:
            raise _cross_field(
                "external", "mode 'external' needs external.host, external.port and external.cidr of the service"
            )
        if self.pooler.enabled is True and self.mode != "in-cluster":
            raise _cross_field(
                "pooler.enabled",
                "the pooler fronts the in-cluster PostgreSQL; a managed service brings its own (mode {mode})",
                mode=self.mode,
            )
        if self.migrations.backup_first and not self.backup.enabled:
            raise _cross_field(
                "migrations.backupFirst",
                "a backup before each migration needs the backup volume: set backup.enabled: true, or "
                "backupFirst: false to migrate without one",
            )
        return self


class RedisSettings(_Strict):
    mode: StoreMode = "in-cluster"
    """in-cluster, external (secret config redisPassword) or disabled."""
    image: DataImage = (
        "docker.io/library/redis:7.4.11-bookworm"
        "@sha256:c6eabf748fc7a61dbb5a705c78bcf3d6377b1127a97d0ce965c11c44ba46896f"
    )
    """Official Redis image (production: pinned by digest)."""
    replicas: Annotated[int, Field(ge=1, le=1)] = 1
    """One server: replication and Sentinel are not built (use mode external for a managed service)."""
    database: Annotated[int, Field(ge=0, le=15)] = 0
    """Logical database in REDIS_URL."""
    storage: StorageSettings = StorageSettings(size="5Gi")
    resources: ResourceSettings = ResourceSettings.model_validate(
        {"requests": {"cpu": "100m", "memory": "384Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
    )
    maxmemory: MemoryQuantity = "256Mi"
    """Memory Redis may use for data; keep it well under the memory limit (fork for AOF rewrite)."""
    maxmemory_policy: RedisEvictionPolicy = "volatile-lru"
    """What is evicted at maxmemory: volatile-lru drops caches (keys with a TTL) before sessions."""
    exporter: ExporterSettings = ExporterSettings(
        image="docker.io/oliver006/redis_exporter:v1.74.0"
        "@sha256:88862b6fc5004ead3495c16d5ba548b14e898fe6d22e7c5b93bf3df83823a9a5"
    )
    external: ExternalSettings | None = None

    @model_validator(mode="after")
    def _memory(self) -> RedisSettings:
        try:
            quantity_bytes(self.maxmemory)
        except ValueError as error:
            raise _cross_field("maxmemory", "{problem}", problem=str(error)) from None
        if self.mode == "external" and self.external is None:
            raise _cross_field(
                "external", "mode 'external' needs external.host, external.port and external.cidr of the service"
            )
        if memory_bytes(self.maxmemory) > 0.8 * memory_bytes(self.resources.limits.memory):
            raise _cross_field(
                "maxmemory",
                "{maxmemory} leaves too little of the {limit} memory limit for the AOF rewrite fork and "
                "buffers; keep it at most 80 % of resources.limits.memory",
                maxmemory=self.maxmemory,
                limit=self.resources.limits.memory,
            )
        return self


# alpine/k8s: kubectl with a POSIX shell (registry.k8s.io/kubectl has no shell to run a script with).
KUBECTL_IMAGE = "docker.io/alpine/k8s:1.34.1@sha256:ec714df3813b5405292860f8a1c55c5727bf8c33c88992f1e981efad8065547f"


class SnapshotSettings(_Strict):
    """CSI VolumeSnapshots of Chroma's claim, taken by a CronJob; off unless a class is named."""

    volume_snapshot_class: DnsName | None = None
    """VolumeSnapshotClass of the snapshots (its CSI driver must serve the claim's StorageClass);
    default: none, no snapshots are taken."""
    schedule: Annotated[str, _check(_CRON, "cron schedule (five fields)", "47 3 * * *")] = "47 3 * * *"
    """When the CronJob runs (cron syntax, in timeZone)."""
    time_zone: str = "Etc/UTC"
    """Time zone of the schedule."""
    keep: Annotated[int, Field(ge=1, le=1000)] = 7
    """How many labelled snapshots are kept; older ones are deleted after a new one is ready."""
    wait_seconds: Annotated[int, Field(ge=30, le=21600)] = 900
    """How long a new snapshot may take to become readyToUse before the run fails."""
    image: DataImage = KUBECTL_IMAGE
    """Image with kubectl and a POSIX shell that runs the script (production: pinned by digest)."""


class ChromaSettings(_Strict):
    mode: StoreMode = "in-cluster"
    """in-cluster, external (secret config chromaToken, sent as a bearer token) or disabled."""
    image: DataImage = (
        "docker.io/chromadb/chroma:1.5.9@sha256:1e0b73a187a28757c572acba508c46f48c9e8b0acaf5c20e6d95cdedce1acdf6"
    )
    """Chroma server image (production: pinned by digest)."""
    replicas: Annotated[int, Field(ge=1, le=1)] = 1
    """One server: the single-node Chroma server does not replicate."""
    storage: StorageSettings = StorageSettings(size="10Gi")
    resources: ResourceSettings = ResourceSettings.model_validate(
        {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    )
    startup_seconds: Annotated[int, Field(ge=30, le=3600)] = 600
    """How long the server may take to load its indexes before the startup probe gives up."""
    snapshots: SnapshotSettings = SnapshotSettings()
    """In-cluster mode: scheduled CSI VolumeSnapshots of the claim (set volumeSnapshotClass to turn them on)."""
    external: ExternalSettings | None = None

    @model_validator(mode="after")
    def _external(self) -> ChromaSettings:
        if self.mode == "external" and self.external is None:
            raise _cross_field(
                "external", "mode 'external' needs external.host, external.port and external.cidr of the service"
            )
        return self


class DataSettings(_Strict):
    namespace: DnsLabel = "support-data"
    """Namespace of the in-cluster stores (PSS restricted, default-deny)."""
    priority: Annotated[int, Field(ge=1, le=1_000_000_000)] = 100_000
    """Value of the data tier's PriorityClass: above the app's, so app pods never preempt a store."""
    protect: bool | None = None
    """protect + retain_on_delete on StatefulSets, claims and the namespace; default: production only."""
    postgres: PostgresSettings = PostgresSettings()
    redis: RedisSettings = RedisSettings()
    chroma: ChromaSettings = ChromaSettings()

    def stores(self) -> dict[str, PostgresSettings | RedisSettings | ChromaSettings]:
        return {"postgres": self.postgres, "redis": self.redis, "chroma": self.chroma}

    def in_cluster(self) -> list[str]:
        return [name for name, store in self.stores().items() if store.mode == "in-cluster"]


def storage_bytes(size: str) -> float:
    return memory_bytes(size)


def data_shape(settings: DataSettings) -> dict[str, Any]:
    """What Kubernetes cannot change in place, as deployed: exported as the stack output `dataShape`
    so the next run can refuse a change that would replace a StatefulSet or a claim."""
    stores: dict[str, Any] = {}
    for name, store in settings.stores().items():
        if store.mode != "in-cluster":
            continue
        shape: dict[str, Any] = {"size": store.storage.size, "storageClass": store.storage.storage_class}
        if isinstance(store, PostgresSettings) and store.backup.enabled:
            shape["backupSize"] = store.backup.storage.size
            shape["backupStorageClass"] = store.backup.storage.storage_class
        stores[name] = shape
    return {"namespace": settings.namespace, "stores": stores}


def _claim(store: str) -> str:
    return f"data-{store}-0"


def immutable_changes(previous: Mapping[str, Any], settings: DataSettings) -> list[tuple[str, str]]:
    """(config path, message) for each change to the deployed shape that Kubernetes cannot apply in
    place; each message says the safe way instead. `previous` is the last update's dataShape."""
    problems: list[tuple[str, str]] = []
    stored = previous.get("stores")
    before: Mapping[str, Any] = stored if isinstance(stored, Mapping) else {}
    now = data_shape(settings)["stores"]
    ns = previous.get("namespace")
    if before and ns and ns != settings.namespace:
        problems.append(
            (
                "data.namespace",
                f"was '{ns}', where the stores keep their volumes; moving them would delete each StatefulSet "
                f"and start empty. Keep '{ns}' (or back up, deploy a new store, restore, then switch)",
            )
        )
    for store, old in before.items():
        new = now.get(store)
        if new is None or not isinstance(old, Mapping):
            continue
        old_size, new_size = str(old.get("size")), str(new["size"])
        if old_size != new_size:
            if memory_bytes(new_size) < memory_bytes(old_size):
                problems.append(
                    (
                        f"data.{store}.storage.size",
                        f"{new_size} is smaller than the deployed {old_size}: Kubernetes cannot shrink a volume. "
                        f"Keep {old_size}",
                    )
                )
            else:
                problems.append(
                    (
                        f"data.{store}.storage.size",
                        f"a StatefulSet's volumeClaimTemplates cannot change in place (the change would replace "
                        f"it). Keep {old_size} here and resize the claim instead: kubectl --namespace "
                        f"{settings.namespace} patch pvc {_claim(store)} --patch "
                        f'\'{{"spec":{{"resources":{{"requests":{{"storage":"{new_size}"}}}}}}}}\' '
                        f"(its StorageClass must allow volume expansion)",
                    )
                )
        if old.get("storageClass") != new["storageClass"]:
            problems.append(
                (
                    f"data.{store}.storage.storageClass",
                    f"the deployed claims use '{old.get('storageClass') or 'the default class'}'; a claim cannot "
                    "move to another class. Keep it (a new class means: back up, deploy a new store, restore)",
                )
            )
        if "backupSize" in old and "backupSize" in new:
            if memory_bytes(str(new["backupSize"])) < memory_bytes(str(old["backupSize"])):
                problems.append(
                    (
                        f"data.{store}.backup.storage.size",
                        f"{new['backupSize']} is smaller than the deployed {old['backupSize']}: Kubernetes cannot "
                        f"shrink a volume. Keep {old['backupSize']} (growing it is fine)",
                    )
                )
            if old.get("backupStorageClass") != new.get("backupStorageClass"):
                problems.append(
                    (
                        f"data.{store}.backup.storage.storageClass",
                        "a claim cannot move to another class; keep the deployed one",
                    )
                )
    return problems
