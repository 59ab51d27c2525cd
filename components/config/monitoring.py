"""Settings of monitoring: bundled servers or the Prometheus Operator, rules, SLOs, receivers."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from components.config.base import (
    _DIGEST,
    _IMAGE,
    _URL_WITH_CREDENTIALS,
    Cidr,
    DnsLabel,
    DnsName,
    MemoryQuantity,
    _check,
    _cross_field,
    _Strict,
)

_PROM_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_PROM_SIZE = re.compile(r"^[0-9]+(B|KB|MB|GB|TB|PB|EB)$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_QUALIFIED_LABEL = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
PromDuration = Annotated[str, _check(_PROM_DURATION, "Prometheus duration", "15d or 1h30m")]
PromSize = Annotated[str, _check(_PROM_SIZE, "Prometheus size (B, KB, MB, GB, TB)", "8GB")]
Fraction = Annotated[float, Field(gt=0, lt=1)]
# Secret config keys a receiver may take its URL from.
ReceiverSecret = Literal["alertWebhookUrl"]


class RetentionSettings(_Strict):
    time: PromDuration = "15d"
    """Prometheus --storage.tsdb.retention.time."""
    size: PromSize = "8GB"
    """Prometheus --storage.tsdb.retention.size; keep it below storage.prometheus."""


class MonitoringStorageSettings(_Strict):
    prometheus: MemoryQuantity = "10Gi"
    """Size of Prometheus' PersistentVolumeClaim."""
    alertmanager: MemoryQuantity = "1Gi"
    """Size of Alertmanager's PersistentVolumeClaim (silences, notification log)."""
    storage_class: DnsName | None = None
    """StorageClass of the claims; default: the cluster's default class."""


class ThresholdSettings(_Strict):
    """Alert thresholds; the defaults are the support system's own values."""

    error_rate: Fraction = 0.05
    """HighErrorRate: share of 5xx responses per service over 5 minutes."""
    response_time_p95_seconds: Annotated[float, Field(gt=0, le=300)] = 2.0
    """HighResponseTime: p95 request latency per service over 5 minutes."""
    database_connections: Fraction = 0.8
    """DatabaseConnectionsHigh: PostgreSQL connections as a share of max_connections."""
    escalation_rate: Fraction = 0.2
    """EscalationRateHigh: chat escalations per chat message over 15 minutes."""
    rag_failure_rate: Fraction = 0.1
    """RAGQueryFailureRate: share of RAG queries that did not succeed over 5 minutes."""
    redis_memory: Fraction = 0.9
    """RedisMemoryHigh: used memory as a share of maxmemory."""
    volume_free: Fraction = 0.1
    """PersistentVolumeFillingUp: fires when less than this share of a volume is free."""
    crash_restarts: Annotated[int, Field(ge=1, le=100)] = 3
    """PodCrashLooping: container restarts within 15 minutes."""
    backup_max_age: PromDuration = "26h"
    """BackupMissing: longest time without a successful backup (a daily backup plus slack)."""
    min_request_rate: Annotated[float, Field(ge=0)] = 0.01
    """Requests per second below which ratio alerts stay silent (no traffic is not an outage)."""


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
    """The platform's SLO: each objective becomes recording rules and multi-window burn-rate alerts."""

    availability: Objective = 99.5
    """Percent of requests answered without a 5xx."""
    latency_seconds: Annotated[float, Field(gt=0, le=300)] = 2.0
    """Latency threshold of the latency objective."""
    latency: Objective = 95.0
    """Percent of requests faster than latencySeconds (95: the p95 is under latencySeconds)."""
    errors: Objective = 99.0
    """Percent of requests without an application error (errors_total)."""


class ReceiverSettings(_Strict):
    """Where Alertmanager posts one class of alerts: a webhook URL, given plainly or from secret config."""

    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None
    """Webhook URL (only one that carries no credentials; otherwise use urlSecret)."""
    url_secret: ReceiverSecret | None = None
    """Secret config key holding the webhook URL."""

    @model_validator(mode="after")
    def _one_url(self) -> ReceiverSettings:
        if (self.url is None) == (self.url_secret is None):
            raise _cross_field("url", "a receiver needs exactly one webhook: url, or urlSecret (e.g. alertWebhookUrl)")
        if self.url is not None and _URL_WITH_CREDENTIALS.search(self.url):
            raise _cross_field("url", "carries credentials, which would be committed; use urlSecret")
        return self


# The name of a secret config key, not a secret.
_DEFAULT_RECEIVER = ReceiverSettings(url_secret="alertWebhookUrl")  # noqa: S106


class ReceiversSettings(_Strict):
    critical: ReceiverSettings = _DEFAULT_RECEIVER
    """Receiver of severity critical (pages)."""
    warning: ReceiverSettings = _DEFAULT_RECEIVER
    """Receiver of severity warning (tickets)."""
    watchdog: ReceiverSettings = _DEFAULT_RECEIVER
    """Dead-man's-switch receiver of the always-firing Watchdog alert."""


class AlertRoutingSettings(_Strict):
    group_by: list[Annotated[str, _check(_LABEL_NAME, "label name", "alertname")]] = [
        "alertname",
        "namespace",
        "service",
    ]
    """Labels Alertmanager groups notifications by."""
    group_wait: PromDuration = "30s"
    """Wait before the first notification of a new group."""
    group_interval: PromDuration = "5m"
    """Wait before notifying about new alerts in a group."""
    repeat_interval: PromDuration = "4h"
    """Resend interval of a still-firing alert (critical and warning)."""
    watchdog_repeat_interval: PromDuration = "1m"
    """Resend interval of the Watchdog heartbeat; the dead-man's switch expects it this often."""


LabelMap = dict[
    Annotated[str, _check(_QUALIFIED_LABEL, "label key", "release")],
    Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")],
]


class OperatorSettings(_Strict):
    """Operator mode: the labels the cluster's Prometheus Operator and Grafana sidecar select."""

    selector_labels: LabelMap = {}
    """Labels the operator's Prometheus selects ServiceMonitors, PodMonitors, PrometheusRules and
    AlertmanagerConfigs by (e.g. release: kube-prometheus-stack); required in operator mode."""
    dashboard_label: LabelMap = {"grafana_dashboard": "1"}
    """Label the Grafana dashboard sidecar loads ConfigMaps by."""
    prometheus_pod_labels: LabelMap = {"app.kubernetes.io/name": "prometheus"}
    """Labels of the operator's Prometheus pods (in network.monitoringNamespace): the only pods the
    app's NetworkPolicies admit to metrics ports."""


def _monitoring_image(value: str) -> str:
    match = _IMAGE.match(value)
    if not match or not (match.group("tag") or _DIGEST.search(value)) or match.group("tag") == "latest":
        raise PydanticCustomError(
            "image",
            "'{value}' is not a pinned image reference; use repository:tag or repository@sha256:<digest>",
            {"value": value},
        )
    return value


MonitoringImage = Annotated[str, AfterValidator(_monitoring_image)]


class MonitoringImages(_Strict):
    """Images of the bundled servers, pinned by digest (multi-arch index); the Prometheus and
    Alertmanager versions match the pinned promtool and amtool that check their configuration."""

    prometheus: MonitoringImage = (
        "docker.io/prom/prometheus:v3.5.0@sha256:63805ebb8d2b3920190daf1cb14a60871b16fd38bed42b857a3182bc621f4996"
    )
    """Prometheus server image."""
    alertmanager: MonitoringImage = (
        "docker.io/prom/alertmanager:v0.28.1@sha256:27c475db5fb156cab31d5c18a4251ac7ed567746a2483ff264516437a39b15ba"
    )
    """Alertmanager image."""
    grafana: MonitoringImage = (
        "docker.io/grafana/grafana:12.1.1@sha256:a1701c2180249361737a99a01bc770db39381640e4d631825d38ff4535efa47d"
    )
    """Grafana image."""
    kube_state_metrics: MonitoringImage = (
        "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0"
        "@sha256:42cfe3723a5f058171c627537fb57a3ea0f26e4380fa18555a95cb1a1b4cfc5b"
    )
    """kube-state-metrics image (bundled mode, monitoring.kubeStateMetrics.enabled)."""


class KubeStateMetricsSettings(_Strict):
    enabled: bool = True
    """Bundled mode: run kube-state-metrics, limited to the platform's namespaces (Roles, no ClusterRole);
    PodCrashLooping and BackupMissing read its series. Operator mode relies on the cluster's own."""


class GrafanaSettings(_Strict):
    allow_from_namespaces: list[DnsLabel] = []
    """Namespaces whose pods may reach Grafana (e.g. the edge's); none by default: use kubectl port-forward."""


class MonitoringSettings(_Strict):
    mode: Literal["bundled", "operator", "none"] = "bundled"
    """bundled: deploy Prometheus, Alertmanager and Grafana; operator: emit Prometheus Operator resources;
    none: no monitoring."""
    retention: RetentionSettings = RetentionSettings()
    storage: MonitoringStorageSettings = MonitoringStorageSettings()
    thresholds: ThresholdSettings = ThresholdSettings()
    slo: SloSettings = SloSettings()
    receivers: ReceiversSettings = ReceiversSettings()
    routing: AlertRoutingSettings = AlertRoutingSettings()
    operator: OperatorSettings = OperatorSettings()
    images: MonitoringImages = MonitoringImages()
    grafana: GrafanaSettings = GrafanaSettings()
    kube_state_metrics: KubeStateMetricsSettings = KubeStateMetricsSettings()
    kubelet_volume_stats: bool = False
    """Bundled mode: scrape every kubelet's volume stats through the API server proxy, which needs a ClusterRole (get
    nodes/proxy, list/watch nodes) for Prometheus. Off: PersistentVolumeFillingUp has no series. Operator mode: the
    cluster's kube-prometheus-stack scrapes kubelets."""
    api_server_cidr: Cidr = "0.0.0.0/0"
    """Where the Kubernetes API server lies: Prometheus' only egress besides scrape targets (ports 443, 6443)."""
    runbook_base_url: Annotated[str, Field(pattern=r"^https?://[^\s]+[^/\s]$")] = (
        "https://runbooks.support-platform.example.com/alerts"
    )
    """Base of every alert's runbook_url (the alert name is appended in lowercase)."""
    scrape_interval: PromDuration = "30s"
    """Prometheus scrape and rule evaluation interval."""

    @model_validator(mode="after")
    def _operator_selector(self) -> MonitoringSettings:
        if self.mode == "operator" and not self.operator.selector_labels:
            raise _cross_field(
                "operator.selectorLabels",
                "operator mode needs the labels the cluster's Prometheus selects by, "
                "e.g. {release: kube-prometheus-stack}",
            )
        return self

    @model_validator(mode="after")
    def _kubelets_only_in_bundled_mode(self) -> MonitoringSettings:
        if self.kubelet_volume_stats and self.mode != "bundled":
            raise _cross_field(
                "kubeletVolumeStats",
                "only bundled mode scrapes kubelets; in operator mode the cluster's Prometheus does, "
                "in mode none nothing",
            )
        return self
