"""Settings of alerting: the app's histogram buckets, alert thresholds, the SLO, Alertmanager's
receivers (webhook, Slack, e-mail) and routing.

The defaults are the platform documents' own (`seeds/000_…`, the customer-support agent: its alert
rules, Alertmanager configuration and SLAs; `001_…` for the container alerts); docs/seeds-contract.md
lists every deliberate difference and why.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from components.config.base import _URL_WITH_CREDENTIALS, DnsLabel, _check, _cross_field, _Strict

_PROM_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_EMAIL = re.compile(r"^[^@\s<>\"']+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_SLACK_CHANNEL = re.compile(r"^[#@]?[A-Za-z0-9._-]{1,80}$")
_SMARTHOST = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")
PromDuration = Annotated[str, _check(_PROM_DURATION, "Prometheus duration", "15d or 1h30m")]
Fraction = Annotated[float, Field(gt=0, lt=1)]
Percent = Annotated[float, Field(gt=0, lt=100)]
EmailAddress = Annotated[str, _check(_EMAIL, "e-mail address", "oncall@example.com")]
# Secret config keys (`pulumi config set --secret`) receivers take their secrets from.
ReceiverSecret = Literal["alertWebhookUrl"]
SLACK_SECRET = "slackWebhookUrl"  # noqa: S105 (the name of a secret config key)
SMTP_SECRET = "smtpPassword"  # noqa: S105 (the name of a secret config key)

# prometheus_client's Histogram.DEFAULT_BUCKETS (prometheus/client_python, prometheus_client/metrics.py):
# the upper bounds of a histogram created without `buckets=`, +Inf appended. No platform document
# declares buckets (000 shows only `_bucket` selectors), so these are what the api's Python app has.
PYTHON_CLIENT_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)


def _ascending(buckets: list[float]) -> list[float]:
    if not buckets:
        raise PydanticCustomError("format", "a histogram needs at least one finite bucket (+Inf is implied)", {})
    if any(not math.isfinite(b) or b <= 0 for b in buckets):
        raise PydanticCustomError(
            "format", "buckets are positive, finite upper bounds in seconds (+Inf is implied)", {}
        )
    if any(later <= earlier for earlier, later in itertools.pairwise(buckets)):
        raise PydanticCustomError("format", "buckets must be strictly ascending, as the client library requires", {})
    return buckets


Buckets = Annotated[list[float], AfterValidator(_ascending)]


def on_bucket(value: float, buckets: list[float]) -> bool:
    return any(math.isclose(value, b, rel_tol=1e-9) for b in buckets)


class HistogramSettings(_Strict):
    """The buckets (upper bounds, `le`) of the app's latency histograms: every SLI and alert threshold
    on a histogram must be one of them, or the series it reads does not exist."""

    chat_message_duration_seconds: Buckets = list(PYTHON_CLIENT_BUCKETS)
    """Buckets of the api's chat_message_duration_seconds, +Inf implied; default: prometheus_client's
    Histogram.DEFAULT_BUCKETS (no document declares them). List exactly what the app passes as buckets=."""


class ThresholdSettings(_Strict):
    """Alert thresholds: the documents' values (000 unless said otherwise) in the documents' units."""

    error_rate_percent: Percent = 5
    """HighErrorRate: errors_total per chat message, percent, over 5 minutes (000)."""
    response_time_p95_seconds: Annotated[float, Field(gt=0, le=300)] = 5.0
    """HighResponseTime: p95 of chat_message_duration_seconds over 5 minutes (000); must be one of
    histograms.chatMessageDurationSeconds."""
    database_connections_percent: Percent = 80
    """DatabaseConnectionsHigh: PostgreSQL connections as percent of max_connections (000 and 003 write
    `pg_stat_activity_count > 80`: 80 % of PostgreSQL's default 100, which they never change)."""
    escalations_per_minute: Annotated[float, Field(gt=0)] = 10
    """EscalationRateHigh: chat escalations per minute over 5 minutes (000)."""
    rag_failure_percent: Percent = 10
    """RAGQueryFailureRate: percent of RAG queries with status="error" over 5 minutes (000)."""
    redis_memory: Fraction = 0.9
    """RedisMemoryHigh: used memory as a share of maxmemory."""
    volume_free: Fraction = 0.1
    """PersistentVolumeFillingUp: fires when less than this share of a volume is free."""
    crash_restarts: Annotated[int, Field(ge=1, le=100)] = 1
    """KubernetesPodCrashLooping: container restarts within 15 minutes (001: any restart, rate > 0)."""
    backup_max_age: PromDuration = "26h"
    """BackupMissing: longest time without a successful backup (a daily backup plus slack)."""
    container_memory: Fraction = 0.8
    """ContainerHighMemoryUsage: working set as a share of the memory limit (001)."""
    container_cpu: Fraction = 0.8
    """ContainerHighCPUUsage: CPU used as a share of the CPU limit (001)."""
    node_memory_percent: Percent = 90
    """HighMemoryUsage: node memory in use, percent (000)."""
    node_cpu_percent: Percent = 80
    """HighCPUUsage: node CPU busy, percent (000)."""
    disk_free_percent: Percent = 10
    """DiskSpaceLow (critical): node filesystem space available below this percent (000)."""
    disk_used: Fraction = 0.85
    """DiskSpaceHigh (warning): node filesystem used above this share (001)."""


def _objective(value: float) -> float:
    if not 0 < value < 100:
        raise PydanticCustomError(
            "format",
            "an SLO target must be above 0 and below 100 % (got {value}); 100 % leaves no error budget",
            {"value": value},
        )
    return value


Objective = Annotated[float, AfterValidator(_objective)]


class SloSettings(_Strict):
    """The SLAs of 000 as SLOs: each objective becomes recording rules and multi-window burn-rate alerts."""

    service: DnsLabel = "api"
    """The service (its scrape job) the objectives are about."""
    availability: Objective = 99.5
    """Percent of time the service's targets are up (000: Availability > 99.5 %)."""
    latency_seconds: Annotated[float, Field(gt=0, le=300)] = 2.5
    """Latency threshold of the latency objective, one of histograms.chatMessageDurationSeconds (000
    says p95 < 2 s; 2 is no default bucket, so 2.5 unless the app declares a 2.0 bucket)."""
    latency: Objective = 95.0
    """Percent of chat messages answered faster than latencySeconds (95: the p95 is under it)."""
    errors: Objective = 99.0
    """Percent of chat messages without an error (errors_total per chat_messages_total; 000: < 1 %)."""


class WebhookSettings(_Strict):
    """A webhook, its URL given plainly or from secret config."""

    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None
    """Webhook URL (only one that carries no credentials; otherwise use urlSecret)."""
    url_secret: ReceiverSecret | None = None
    """Secret config key holding the webhook URL."""

    @model_validator(mode="after")
    def _one_url(self) -> WebhookSettings:
        if (self.url is None) == (self.url_secret is None):
            raise _cross_field("url", "a webhook needs exactly one of url, or urlSecret (e.g. alertWebhookUrl)")
        if self.url is not None and _URL_WITH_CREDENTIALS.search(self.url):
            raise _cross_field("url", "carries credentials, which would be committed; use urlSecret")
        return self


class SlackSettings(_Strict):
    """Alertmanager's Slack notifier; the incoming-webhook URL is secret config slackWebhookUrl."""

    channel: Annotated[str, _check(_SLACK_CHANNEL, "Slack channel", "#alerts")]
    """Channel to post to (000: #alerts)."""
    title: str | None = None
    """Message title; default: 000's 'Critical Alert' (critical), 'Warning Alert' (warning)."""
    text: str = "{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}"
    """Message text (000's template)."""
    send_resolved: bool = False
    """Also post when the alert resolves (Alertmanager's default for Slack, which 000 keeps)."""


class EmailSettings(_Strict):
    """Alertmanager's e-mail notifier, through monitoring.smtp."""

    to: Annotated[list[EmailAddress], Field(min_length=1)]
    """Recipients."""
    subject: str | None = None
    """Subject header; default: 000's '[CRITICAL] Customer Support Alert' / '[WARNING] Customer Support Alert'."""
    text: str = (
        "{{ range .Alerts }}\nAlert: {{ .Annotations.summary }}\nDescription: {{ .Annotations.description }}\n{{ end }}"
    )
    """Plain-text body (000's `body` template; Alertmanager calls the field `text`)."""
    send_resolved: bool = False
    """Also mail when the alert resolves (Alertmanager's default for e-mail, which 000 keeps)."""


class SmtpSettings(_Strict):
    """The mail server every e-mail receiver sends through (000's global smtp_* settings)."""

    smarthost: Annotated[str, _check(_SMARTHOST, "host:port", "smtp.example.com:587")]
    """SMTP server as host:port."""
    sender: EmailAddress = Field(alias="from")
    """From address."""
    auth_username: str | None = None
    """SMTP login; its password is secret config smtpPassword."""
    require_tls: bool = True
    """Require STARTTLS."""


class ReceiverSettings(_Strict):
    """Where one class of alerts goes: any of a webhook, Slack and e-mail; at least one."""

    webhook: WebhookSettings | None = None
    slack: SlackSettings | None = None
    email: EmailSettings | None = None

    @model_validator(mode="after")
    def _something(self) -> ReceiverSettings:
        if self.webhook is None and self.slack is None and self.email is None:
            raise _cross_field("webhook", "a receiver needs at least one of webhook, slack or email")
        return self


# The name of a secret config key, not a secret.
_DEFAULT_RECEIVER = ReceiverSettings(webhook=WebhookSettings(url_secret="alertWebhookUrl"))  # noqa: S106


class ReceiversSettings(_Strict):
    critical: ReceiverSettings = _DEFAULT_RECEIVER
    """Receiver of severity critical (pages; 000's critical-alerts)."""
    warning: ReceiverSettings = _DEFAULT_RECEIVER
    """Receiver of severity warning (tickets; 000's warning-alerts)."""
    watchdog: ReceiverSettings = _DEFAULT_RECEIVER
    """Dead-man's-switch receiver of the always-firing Watchdog alert."""

    def named(self) -> dict[str, ReceiverSettings]:
        return {"critical": self.critical, "warning": self.warning, "watchdog": self.watchdog}


class AlertRoutingSettings(_Strict):
    """000's route: group by alert name, 10 s to the first notification, 10 s between updates, 1 h repeat."""

    group_by: list[Annotated[str, _check(_LABEL_NAME, "label name", "alertname")]] = ["alertname"]
    """Labels Alertmanager groups notifications by."""
    group_wait: PromDuration = "10s"
    """Wait before the first notification of a new group."""
    group_interval: PromDuration = "10s"
    """Wait before notifying about new alerts in a group."""
    repeat_interval: PromDuration = "1h"
    """Resend interval of a still-firing alert (critical and warning)."""
    watchdog_repeat_interval: PromDuration = "1m"
    """Resend interval of the Watchdog heartbeat; the dead-man's switch expects it this often."""
