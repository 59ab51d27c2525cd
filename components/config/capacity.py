"""Connection capacity: each service's database pool, PgBouncer in front of PostgreSQL, and the budget
that must add up at full scale before any resource is registered.

At full scale every service that connects to PostgreSQL runs its most pods (the HPA's maxReplicas,
else replicas) plus the one a rolling update adds (maxSurge 1), each pod `processes` worker processes,
each with its own pool of `size + maxOverflow` connections. Next to them the data tier's own clients
(the exporter, the nightly and the pre-migration backup, the migration) and an operator's sessions.
All of that must fit max_connections minus superuser_reserved_connections; with the pooler, the
services' connections end at PgBouncer (`maxClientConnections`) and PostgreSQL sees only the pooler's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from components.config.app import AppSettings
    from components.config.data import DataSettings

# PostgreSQL's default superuser_reserved_connections.
SUPERUSER_RESERVED_DEFAULT = 3
# A rolling update adds one pod at a time (maxSurge 1, components/kit/workload.py).
SURGE = 1


class Settings(Protocol):
    """What the budget reads of the stack's settings (config/stack.py), named here so that this module
    stays below the one that calls it."""

    @property
    def app(self) -> AppSettings: ...
    @property
    def data(self) -> DataSettings: ...
    def runs_migrations(self) -> bool: ...
    def backs_up_before_migration(self) -> bool: ...
    def pools_connections(self) -> bool: ...


@dataclass(frozen=True)
class Use:
    """Connections one client of PostgreSQL (or of the pooler) may hold at full scale."""

    who: str
    connections: int
    how: str


def _service_uses(settings: Settings) -> tuple[list[Use], list[str]]:
    """The services' connections at full scale, and the services that connect without a declared pool."""
    uses: list[Use] = []
    undeclared: list[str] = []
    for name, svc in sorted(settings.app.enabled_services().items()):
        if "postgres" not in svc.connects_to:
            continue
        pool = svc.database_pool
        if pool is None:
            undeclared.append(name)
            continue
        scaling = svc.autoscaling
        if scaling.enabled and scaling.max_replicas is not None:
            pods, source = scaling.max_replicas, f"app.services.{name}.autoscaling.maxReplicas"
        else:
            pods, source = svc.replicas, f"app.services.{name}.replicas"
        key = f"app.services.{name}.databasePool"
        uses.append(
            Use(
                name,
                (pods + SURGE) * pool.processes * pool.per_process,
                f"{name}: {pods + SURGE} pods ({source} {pods} + {SURGE} surge) x {pool.processes} process(es) "
                f"({key}.processes) x {pool.per_process} ({key}.size {pool.size} + maxOverflow {pool.max_overflow})",
            )
        )
    return uses, undeclared


def _platform_uses(settings: Settings) -> list[Use]:
    """The data tier's own clients: each opens one connection."""
    pg = settings.data.postgres
    uses = [Use("operator sessions", pg.admin_connections, "data.postgres.adminConnections")]
    if pg.exporter.enabled:
        uses.append(Use("exporter", 1, "the exporter"))
    if pg.backup.enabled:
        uses.append(Use("nightly backup", 1, "pg_dump of the nightly backup"))
    if settings.runs_migrations() and settings.backs_up_before_migration():
        uses.append(Use("backup before migration", 1, "pg_dump before a migration"))
    return uses


def _total(uses: list[Use]) -> int:
    return sum(u.connections for u in uses)


def _listed(uses: list[Use]) -> str:
    return "; ".join(f"{u.how} = {u.connections}" for u in uses)


def _pooled_problem(settings: Settings, clients: list[Use], available: int, head: str) -> tuple[str, str] | None:
    pooler = settings.data.postgres.pooler
    if _total(clients) > pooler.max_client_connections:
        return (
            "data.postgres.pooler.maxClientConnections",
            f"the app can open {_total(clients)} connections to PgBouncer at full scale, more than the "
            f"{pooler.max_client_connections} one PgBouncer pod accepts: {_listed(clients)}. Raise "
            "data.postgres.pooler.maxClientConnections or lower those keys",
        )
    pods = pooler.replicas + SURGE
    bouncers = Use(
        "pgbouncer",
        pods * pooler.server_connections,
        f"pgbouncer: {pods} pods (data.postgres.pooler.replicas {pooler.replicas} + {SURGE} surge) x "
        f"{pooler.server_connections} (defaultPoolSize {pooler.default_pool_size} + reservePoolSize "
        f"{pooler.reserve_pool_size})",
    )
    server = [bouncers, *_platform_uses(settings)]
    if _total(server) <= available:
        return None
    return (
        "data.postgres.parameters.max_connections",
        f"PgBouncer and the data tier can open {_total(server)} connections at full scale, {head}: "
        f"{_listed(server)}. Lower data.postgres.pooler.defaultPoolSize, reservePoolSize or replicas, or raise "
        "data.postgres.parameters.max_connections",
    )


def connection_budget_problem(settings: Settings) -> tuple[str, str] | None:
    """(config path, message) when the connections at full scale do not fit; None when they do."""
    pg = settings.data.postgres
    if pg.mode != "in-cluster":
        # A managed service's limit is not in this configuration.
        return None
    services, undeclared = _service_uses(settings)
    if undeclared:
        name = undeclared[0]
        return (
            f"app.services.{name}.databasePool",
            f"'{name}' connects to postgres without a declared pool, so its connections cannot be counted; "
            "give size, maxOverflow and processes (what each worker process of the service keeps open)",
        )
    migration = [Use("migration", 1, "the migration Job")] if settings.runs_migrations() else []
    max_connections = int(pg.parameters.get("max_connections", 100))
    reserved = int(pg.parameters.get("superuser_reserved_connections", SUPERUSER_RESERVED_DEFAULT))
    available = max_connections - reserved
    head = f"max_connections {max_connections} - superuser_reserved_connections {reserved} = {available} allowed"
    if settings.pools_connections():
        return _pooled_problem(settings, [*services, *migration], available, head)
    used = [*services, *migration, *_platform_uses(settings)]
    if _total(used) <= available:
        return None
    return (
        "data.postgres.parameters.max_connections",
        f"the platform can open {_total(used)} connections to PostgreSQL at full scale, {head}: {_listed(used)}. "
        "Lower those keys, raise data.postgres.parameters.max_connections (each connection costs PostgreSQL "
        "memory), or put PgBouncer in front: data.postgres.pooler.enabled: true",
    )
