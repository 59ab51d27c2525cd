"""What the tiers hand each other: small typed values that every tier imports and no tier owns.

The data tier publishes endpoints and takes backups; the app tier declares its clients, metrics and
routable backends; monitoring scrapes what the others declare; the edge routes to backends.
platform.py passes these values from one tier to the next, so no tier imports another. Values
only: the NetworkPolicy peers they imply are built by components/kit/network.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pulumi


@dataclass(frozen=True)
class SecretKeyRef:
    """Where a credential lives as a Kubernetes Secret key (in the store's own namespace)."""

    namespace: str
    name: str
    key: str


@dataclass(frozen=True)
class DataEndpoint:
    """Where a data store listens, as the data tier publishes it: the app tier's typed input.

    In-cluster stores name their namespace and pod selector (NetworkPolicies select exactly those
    pods); external ones give the CIDR their address lies in."""

    name: str
    host: str
    port: int
    namespace: str | None
    cidr: str | None
    pod_selector: Mapping[str, str] | None = None
    # The credential as a secret Output (composed into DATABASE_URL and friends), and where the data
    # tier keeps it; None where the store takes none (in-cluster Chroma has no auth).
    credential: pulumi.Output[str] | None = None
    secret: SecretKeyRef | None = None
    database: str | None = None
    user: str | None = None
    tls: bool = False


@dataclass(frozen=True)
class Client:
    """A pod group declared to connect to a store: the only pods the store's NetworkPolicy admits."""

    name: str
    namespace: str
    selector: Mapping[str, str]


@dataclass(frozen=True)
class MetricsEndpoint:
    """A metrics endpoint a component declares: which Service's port Prometheus scrapes, and where."""

    component: str
    namespace: str
    service: str
    port: str
    path: str = "/metrics"
    # The port's number, for the NetworkPolicy that lets Prometheus reach it.
    port_number: int | None = None
    # An exporter that reports on other objects (kube-state-metrics) keeps its own namespace and pod
    # labels instead of having them overwritten by its own target's.
    honor_labels: bool = False


@dataclass(frozen=True)
class Backend:
    """A routable service: the Service's name and the port the edge sends to."""

    service: str
    port: int


@dataclass(frozen=True)
class ExternalSecrets:
    """Secret config values (Pulumi secret Outputs); None where unset, which settings allow only in dev."""

    llm_api_key: pulumi.Output[str] | None = None
    alert_webhook_url: pulumi.Output[str] | None = None
    # Alertmanager's Slack webhook URL and SMTP password (receivers with slack, monitoring.smtp).
    slack_webhook_url: pulumi.Output[str] | None = None
    smtp_password: pulumi.Output[str] | None = None
    registry_password: pulumi.Output[str] | None = None
    # External stores' credentials: postgresPassword, redisPassword, chromaToken.
    postgres_password: pulumi.Output[str] | None = None
    redis_password: pulumi.Output[str] | None = None
    chroma_token: pulumi.Output[str] | None = None

    def receivers(self) -> dict[str, pulumi.Output[str] | None]:
        """What Alertmanager's receivers may reference, by secret config key."""
        return {
            "alertWebhookUrl": self.alert_webhook_url,
            "slackWebhookUrl": self.slack_webhook_url,
            "smtpPassword": self.smtp_password,
        }


@dataclass(frozen=True)
class BackupRequest:
    """A migration asks the data tier for a backup first.

    `requester` is the component asking (the migration): the backup Job was once its child, and the
    data tier names and aliases the Job after it so that a deployed Job moves instead of being
    replaced. `release` is the image being rolled out: the same release always names the same dump."""

    requester: pulumi.Resource
    requester_name: str
    release: pulumi.Input[str]
    timeout_seconds: int
    # The requester's resources that must exist first.
    after: Sequence[pulumi.Resource] = ()


@dataclass(frozen=True)
class BackupTaken:
    """The data tier's answer: the Job to wait for, and the label its dump carries."""

    job: pulumi.Resource
    label: pulumi.Output[str]


class PreMigrationBackups(Protocol):
    """What the data tier offers a migration: a backup of PostgreSQL, taken before it runs."""

    def backup_before(self, request: BackupRequest) -> BackupTaken: ...


@dataclass(frozen=True)
class MigrationPlan:
    """What the platform decides about a service's migrations; the service adds its image and env."""

    command: Sequence[str]
    timeout_seconds: int
    endpoint: DataEndpoint
    # None: no backup first (not asked for, or PostgreSQL is a managed service that keeps its own).
    backups: PreMigrationBackups | None = None
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
