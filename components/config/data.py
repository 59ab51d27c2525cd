"""Settings of the data tier: PostgreSQL, Redis and Chroma."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
    model_validator,
)

from components.config.base import Cidr, DnsLabel, DnsName, Port, _cross_field, _Strict


class Endpoint(_Strict):
    """A data service the app connects to. In-cluster ones name their namespace (NetworkPolicies
    select it); external ones give the CIDR their address lies in."""

    host: DnsName
    """DNS name the app connects to."""
    port: Port
    """TCP port."""
    namespace: DnsLabel | None = None
    """In-cluster service: its namespace (egress is allowed to that namespace only)."""
    cidr: Cidr | None = None
    """External service: the CIDR its address lies in (egress is allowed to it only)."""

    @model_validator(mode="after")
    def _placement(self) -> Endpoint:
        if (self.namespace is None) == (self.cidr is None):
            raise _cross_field(
                "namespace",
                "give exactly one of namespace (in-cluster service) or cidr (external service); "
                "`namespace: null` drops the default namespace",
            )
        return self


class PostgresEndpoint(Endpoint):
    database: DnsLabel = "support"
    """Database name in DATABASE_URL."""
    user: DnsLabel = "support"
    """Database user in DATABASE_URL (its password is generated)."""


class RedisEndpoint(Endpoint):
    database: Annotated[int, Field(ge=0, le=15)] = 0
    """Redis logical database in REDIS_URL."""


class DataSettings(_Strict):
    postgres: PostgresEndpoint = PostgresEndpoint(
        host="postgres.support-data.svc.cluster.local", port=5432, namespace="support-data"
    )
    redis: RedisEndpoint = RedisEndpoint(
        host="redis.support-data.svc.cluster.local", port=6379, namespace="support-data"
    )
    chroma: Endpoint = Endpoint(host="chroma.support-data.svc.cluster.local", port=8000, namespace="support-data")
