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

from components.config.alerting import (
    SLACK_SECRET,
    SMTP_SECRET,
    AlertRoutingSettings,
    HistogramSettings,
    PromDuration,
    ReceiversSettings,
    SloSettings,
    SmtpSettings,
    ThresholdSettings,
    on_bucket,
)
from components.config.base import (
    _DIGEST,
    _IMAGE,
    Cidr,
    DnsLabel,
    DnsName,
    MemoryQuantity,
    Port,
    _check,
    _cross_field,
    _Strict,
)

_PROM_SIZE = re.compile(r"^[0-9]+(B|KB|MB|GB|TB|PB|EB)$")
_QUALIFIED_LABEL = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
PromSize = Annotated[str, _check(_PROM_SIZE, "Prometheus size (B, KB, MB, GB, TB)", "8GB")]


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


class NodeExporterSettings(_Strict):
    enabled: bool = False
    """The node alerts of 000 and 001 (HighMemoryUsage, HighCPUUsage, DiskSpaceLow, DiskSpaceHigh, and in
    operator mode KubernetesNodeNotReady). Bundled mode scrapes every node's node_exporter through the API
    server proxy (the nodes/proxy ClusterRole); operator mode relies on the cluster's (kube-prometheus-stack)."""
    port: Port = 9100
    """Bundled mode: the port node_exporter listens on, on every node (hostNetwork)."""


class GrafanaSettings(_Strict):
    allow_from_namespaces: list[DnsLabel] = []
    """Namespaces whose pods may reach Grafana (e.g. the edge's); none by default: use kubectl port-forward."""


class MonitoringSettings(_Strict):
    mode: Literal["bundled", "operator", "none"] = "bundled"
    """bundled: deploy Prometheus, Alertmanager and Grafana; operator: emit Prometheus Operator resources;
    none: no monitoring."""
    retention: RetentionSettings = RetentionSettings()
    storage: MonitoringStorageSettings = MonitoringStorageSettings()
    histograms: HistogramSettings = HistogramSettings()
    thresholds: ThresholdSettings = ThresholdSettings()
    slo: SloSettings = SloSettings()
    receivers: ReceiversSettings = ReceiversSettings()
    smtp: SmtpSettings | None = None
    """Mail server of the e-mail receivers (000's global smtp_*); required when a receiver has email."""
    routing: AlertRoutingSettings = AlertRoutingSettings()
    operator: OperatorSettings = OperatorSettings()
    images: MonitoringImages = MonitoringImages()
    grafana: GrafanaSettings = GrafanaSettings()
    kube_state_metrics: KubeStateMetricsSettings = KubeStateMetricsSettings()
    kubelet_volume_stats: bool = False
    """Bundled mode: scrape every kubelet's volume stats through the API server proxy, which needs a ClusterRole (get
    nodes/proxy, list/watch nodes) for Prometheus. Off: PersistentVolumeFillingUp has no series. Operator mode: the
    cluster's kube-prometheus-stack scrapes kubelets."""
    cadvisor: bool = False
    """Container CPU and memory against their limits (001's alerts, as ContainerHighCPUUsage and
    ContainerHighMemoryUsage). Bundled mode scrapes every kubelet's cAdvisor through the API server proxy,
    which needs the nodes/proxy ClusterRole kubeletVolumeStats uses; operator mode relies on the cluster's
    kubelet job (kube-prometheus-stack scrapes /metrics/cadvisor)."""
    node_exporter: NodeExporterSettings = NodeExporterSettings()
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
    def _thresholds_on_declared_buckets(self) -> MonitoringSettings:
        # An SLI or threshold between two buckets reads a `le` series the app does not have (the SLI
        # records nothing) or an interpolated guess (the quantile alert fires at another latency).
        buckets = self.histograms.chat_message_duration_seconds
        for key, value in (
            ("slo.latencySeconds", self.slo.latency_seconds),
            ("thresholds.responseTimeP95Seconds", self.thresholds.response_time_p95_seconds),
        ):
            if not on_bucket(value, buckets):
                raise _cross_field(
                    key,
                    "{value} is not a bucket of chat_message_duration_seconds (monitoring.histograms."
                    "chatMessageDurationSeconds: {buckets}); use one of them, or add {value} to "
                    "monitoring.histograms.chatMessageDurationSeconds if the app declares that bucket",
                    value=value,
                    buckets=", ".join(f"{b:g}" for b in buckets),
                )
        return self

    @model_validator(mode="after")
    def _email_needs_smtp(self) -> MonitoringSettings:
        for name, receiver in self.receivers.named().items():
            if receiver.email is not None and self.smtp is None:
                raise _cross_field(
                    f"receivers.{name}.email",
                    "e-mail needs a mail server: set monitoring.smtp (smarthost, from, authUsername)",
                )
        return self

    def required_secrets(self) -> dict[str, str]:
        """Secret config key -> the setting that needs it, for the receivers as configured."""
        needed: dict[str, str] = {}
        if self.mode == "none":
            return needed
        for name, receiver in self.receivers.named().items():
            if receiver.slack is not None:
                needed.setdefault(SLACK_SECRET, f"monitoring.receivers.{name}.slack")
        if self.smtp is not None and self.smtp.auth_username is not None:
            needed[SMTP_SECRET] = "monitoring.smtp.authUsername"
        return needed

    def node_proxy(self) -> bool:
        """Bundled mode reads something through the kubelets' API server proxy (a ClusterRole)."""
        return self.mode == "bundled" and (self.kubelet_volume_stats or self.cadvisor or self.node_exporter.enabled)

    @model_validator(mode="after")
    def _kubelets_only_in_bundled_mode(self) -> MonitoringSettings:
        if self.kubelet_volume_stats and self.mode != "bundled":
            raise _cross_field(
                "kubeletVolumeStats",
                "only bundled mode scrapes kubelets; in operator mode the cluster's Prometheus does, "
                "in mode none nothing",
            )
        if self.mode == "none" and (self.cadvisor or self.node_exporter.enabled):
            raise _cross_field("cadvisor", "mode none has no rules to add container or node alerts to")
        return self
