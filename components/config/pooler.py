"""Settings of PgBouncer in front of the in-cluster PostgreSQL (data.postgres.pooler)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from components.config.app import ResourceSettings
from components.config.base import DataImage, _Strict


class PoolerSettings(_Strict):
    """PgBouncer in front of the in-cluster PostgreSQL: the app's services and migrations connect to it;
    PostgreSQL sees at most `defaultPoolSize + reservePoolSize` connections per PgBouncer pod."""

    enabled: bool | None = None
    """Put PgBouncer between the app and PostgreSQL (DATABASE_URL points at it); default: on in production
    (up to maxReplicas + 1 pods of each service cannot hold their own connections there), off elsewhere."""
    image: DataImage = (
        "ghcr.io/cloudnative-pg/pgbouncer:1.25.1"
        "@sha256:e6ddfe22d845e603825e235dd8334b21ecd125abea2a2172478f556b8dee2bb8"
    )
    """PgBouncer image (CloudNativePG's build of PgBouncer 1.25.1; production: pinned by digest)."""
    replicas: Annotated[int, Field(ge=1, le=10)] = 2
    """PgBouncer pods (two: a node drain never takes the database away from the app)."""
    pool_mode: Literal["transaction", "session"] = "transaction"
    """transaction: a server connection per transaction (the app must not rely on session state such as
    SET or server-side prepared statements across transactions); session: per client connection."""
    default_pool_size: Annotated[int, Field(ge=1, le=1000)] = 20
    """Server connections per PgBouncer pod."""
    reserve_pool_size: Annotated[int, Field(ge=0, le=1000)] = 5
    """Extra server connections per pod when clients wait longer than 5 s."""
    max_client_connections: Annotated[int, Field(ge=1, le=100_000)] = 1000
    """Client connections one PgBouncer pod accepts (the budget assumes every client may land on one pod)."""
    resources: ResourceSettings = ResourceSettings.model_validate(
        {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}
    )
    """requests and limits of each PgBouncer pod."""

    @property
    def server_connections(self) -> int:
        return self.default_pool_size + self.reserve_pool_size
