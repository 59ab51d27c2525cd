"""The platform's alerts: the documents' (seeds 000 and 001, 002 for the MCP server) with their names,
thresholds, `for:` and severities, written so that they evaluate as meant, plus the program's own for
the data tier, backups and the alerting pipeline. docs/seeds-contract.md tables every difference.

What the documents' expressions get wrong, and how these differ:
- a ratio of two series divides label set by label set: `rate(errors_total) / rate(chat_messages_total)`
  matches nothing (chat_messages_total carries `role`), `rate(x{status="error"}) / rate(x)` is always
  100 %. Both sides are summed by (namespace, service) here.
- `histogram_quantile` over unaggregated buckets is a quantile per pod; here per service, over `le`.
- every selector is limited to the platform's namespaces: in operator mode the cluster's Prometheus
  also scrapes other teams' targets, which are not ours to page about.
- cAdvisor's CPU counter carries a `cpu` label its quota does not, and containers without a limit
  report 0: both sides are summed by container, and a limit of 0 is no limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.config import MonitoringSettings
from components.monitoring.promql import alternatives, duration_seconds, number

BY = "namespace, service"
CONTAINER = "namespace, pod, container"
RATE_WINDOW = "5m"
# The built-in MCP tool server's scrape job (its service name): MCPServerDown, not ServiceDown, covers it.
MCP_JOB = "mcp"
# The data tier's stores, by the `service` label of their exporters' series.
STORES = ("postgres", "redis")


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    severity: str
    summary: str
    description: str
    duration: str = "5m"
    # The document (seeds file number) the alert comes from; None: the program's own.
    source: str | None = None

    def rule(self, runbook_base_url: str) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.duration != "0s":
            rule["for"] = self.duration
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": f"{runbook_base_url}/{self.name.lower()}",
        }
        return rule


class _Selectors:
    """Selectors limited to the platform's namespaces."""

    def __init__(self, namespaces: Sequence[str]) -> None:
        self.ns = f'namespace=~"{alternatives(namespaces)}"'

    def __call__(self, metric: str, *matchers: str) -> str:
        return f"{metric}{{{', '.join((self.ns, *matchers))}}}"

    def rate(self, metric: str, *matchers: str, by: str = BY) -> str:
        return f"sum by ({by}) (rate({self(metric, *matchers)}[{RATE_WINDOW}]))"


def app_alerts(settings: MonitoringSettings, namespaces: Sequence[str]) -> list[Alert]:
    """000's alerts on the api's own metrics, and the targets of every scraped service."""
    t, s = settings.thresholds, _Selectors(namespaces)
    up_but_mcp, up_mcp = s("up", f'job!="{MCP_JOB}"'), s("up", f'job="{MCP_JOB}"')
    rag_errors = s.rate("rag_queries_total", 'status="error"')
    return [
        Alert(
            "HighErrorRate",
            f"{s.rate('errors_total')} / {s.rate('chat_messages_total')} * 100 > {number(t.error_rate_percent)}",
            "warning",
            "High error rate detected",
            '{{ $labels.service }} in {{ $labels.namespace }}: error rate is {{ $value | printf "%.1f" }}% of '
            "chat messages for the last 5 minutes.",
            "2m",
            "000",
        ),
        Alert(
            "HighResponseTime",
            f"histogram_quantile(0.95, {s.rate('chat_message_duration_seconds_bucket', by=f'{BY}, le')})"
            f" > {number(t.response_time_p95_seconds)}",
            "warning",
            "High response time detected",
            "{{ $labels.service }} in {{ $labels.namespace }}: 95th percentile response time is "
            "{{ $value | humanizeDuration }}.",
            "2m",
            "000",
        ),
        Alert(
            "ServiceDown",
            f"{up_but_mcp} == 0",
            "critical",
            "Service is down",
            "{{ $labels.instance }} ({{ $labels.service }}, pod {{ $labels.pod }} in {{ $labels.namespace }}) has "
            "been down for more than 1 minute.",
            "1m",
            "000",
        ),
        Alert(
            "MCPServerDown",
            f"{up_mcp} == 0",
            "critical",
            "MCP server is unavailable",
            "{{ $labels.instance }} (pod {{ $labels.pod }} in {{ $labels.namespace }}) has been unreachable for more "
            "than 5 minutes; tool calls of the assistant fail.",
            "5m",
            "002",
        ),
        Alert(
            "EscalationRateHigh",
            f"{s.rate('chat_escalations_total')} * 60 > {number(t.escalations_per_minute)}",
            "warning",
            "High escalation rate",
            '{{ $labels.service }}: escalation rate is {{ $value | printf "%.1f" }} per minute; the assistant may '
            "be failing (LLM, RAG) or a new topic is trending.",
            "2m",
            "000",
        ),
        Alert(
            "RAGQueryFailureRate",
            f"{rag_errors} / {s.rate('rag_queries_total')} * 100 > {number(t.rag_failure_percent)}",
            "warning",
            "High RAG query failure rate",
            '{{ $labels.service }}: RAG query failure rate is {{ $value | printf "%.1f" }}%; check Chroma and its '
            "token.",
            "2m",
            "000",
        ),
    ]


def data_alerts(settings: MonitoringSettings, namespaces: Sequence[str]) -> list[Alert]:
    """The stores (the exporters' series), their volumes and backups."""
    t, s = settings.thresholds, _Selectors(namespaces)
    backups = s("kube_cronjob_status_last_successful_time", 'cronjob=~".*backup.*"')
    return [
        Alert(
            "DatabaseConnectionsHigh",
            f"sum by ({BY}) ({s('pg_stat_activity_count')}) / max by ({BY}) ({s('pg_settings_max_connections')} > 0)"
            f" * 100 > {number(t.database_connections_percent)}",
            "warning",
            "High database connections",
            '{{ $labels.service }} in {{ $labels.namespace }} uses {{ $value | printf "%.0f" }}% of max_connections; '
            "check the pools (app.services.*.databasePool) and replicas.",
            "5m",
            "000",
        ),
        Alert(
            "PostgresDown",
            f"max by ({BY}) ({s('pg_up')}) == 0",
            "critical",
            "PostgreSQL is down",
            "The exporter of {{ $labels.service }} in {{ $labels.namespace }} cannot reach PostgreSQL.",
            "1m",
        ),
        Alert(
            "RedisDown",
            f"max by ({BY}) ({s('redis_up')}) == 0",
            "critical",
            "Redis is down",
            "The exporter of {{ $labels.service }} in {{ $labels.namespace }} cannot reach Redis.",
            "1m",
        ),
        Alert(
            "RedisMemoryHigh",
            f"max by ({BY}) ({s('redis_memory_used_bytes')}) / max by ({BY}) ({s('redis_memory_max_bytes')} > 0)"
            f" > {number(t.redis_memory)}",
            "warning",
            "Redis uses more than " + f"{number(t.redis_memory * 100)} % of maxmemory",
            "{{ $labels.service }} in {{ $labels.namespace }} uses {{ $value | humanizePercentage }} of maxmemory; "
            "keys will be evicted or writes refused.",
        ),
        Alert(
            "PersistentVolumeFillingUp",
            f"min by (namespace, persistentvolumeclaim) ({s('kubelet_volume_stats_available_bytes')}"
            f" / {s('kubelet_volume_stats_capacity_bytes')}) < {number(t.volume_free)}",
            "warning",
            "Volume {{ $labels.persistentvolumeclaim }} is almost full",
            "{{ $labels.persistentvolumeclaim }} in {{ $labels.namespace }} has {{ $value | humanizePercentage }} "
            "free.",
        ),
        Alert(
            "BackupMissing",
            f"time() - max by (namespace, cronjob) ({backups}) > {number(duration_seconds(t.backup_max_age))}",
            "warning",
            "No successful backup for " + t.backup_max_age,
            "CronJob {{ $labels.cronjob }} in {{ $labels.namespace }} last succeeded {{ $value | humanizeDuration }} "
            "ago.",
            "0s",
        ),
    ]


def kubernetes_alerts(settings: MonitoringSettings, namespaces: Sequence[str]) -> list[Alert]:
    """Pods (kube-state-metrics) and, where cAdvisor is scraped, containers against their limits (001)."""
    t, s = settings.thresholds, _Selectors(namespaces)
    alerts = [
        Alert(
            "KubernetesPodCrashLooping",
            f"sum by ({CONTAINER}) (increase({s('kube_pod_container_status_restarts_total')}[15m]))"
            f" >= {t.crash_restarts}",
            "warning",
            "Pod is crash looping",
            "Pod {{ $labels.namespace }}/{{ $labels.pod }} (container {{ $labels.container }}) restarted "
            '{{ $value | printf "%.0f" }} times in 15 minutes.',
            "5m",
            "001",
        )
    ]
    if settings.cadvisor:
        # Real containers only: the pod's own cgroup has container="", the pause container "POD".
        real = ('container!=""', 'container!="POD"')
        alerts += [
            Alert(
                "ContainerHighMemoryUsage",
                f"sum by ({CONTAINER}) ({s('container_memory_working_set_bytes', *real)})"
                f" / sum by ({CONTAINER}) ({s('container_spec_memory_limit_bytes', *real)} > 0)"
                f" > {number(t.container_memory)}",
                "warning",
                "High memory usage of {{ $labels.container }}",
                "Container {{ $labels.container }} of {{ $labels.namespace }}/{{ $labels.pod }} uses "
                "{{ $value | humanizePercentage }} of its memory limit; it is OOM-killed at 100 %.",
                "5m",
                "001",
            ),
            Alert(
                "ContainerHighCPUUsage",
                f"sum by ({CONTAINER}) (rate({s('container_cpu_usage_seconds_total', *real)}[{RATE_WINDOW}]))"
                f" / sum by ({CONTAINER}) (({s('container_spec_cpu_quota', *real)} > 0)"
                f" / {s('container_spec_cpu_period', *real)}) > {number(t.container_cpu)}",
                "warning",
                "High CPU usage of {{ $labels.container }}",
                "Container {{ $labels.container }} of {{ $labels.namespace }}/{{ $labels.pod }} uses "
                "{{ $value | humanizePercentage }} of its CPU limit and is being throttled.",
                "5m",
                "001",
            ),
        ]
    return alerts


def node_alerts(settings: MonitoringSettings) -> list[Alert]:
    """000's and 001's node alerts, where node_exporter is scraped: nodes are not namespaced."""
    if not settings.node_exporter.enabled:
        return []
    t = settings.thresholds
    fs = 'fstype!="tmpfs"'
    alerts = [
        Alert(
            "HighMemoryUsage",
            "(node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes) / node_memory_MemTotal_bytes * 100"
            f" > {number(t.node_memory_percent)}",
            "warning",
            "High memory usage",
            'Memory usage of {{ $labels.instance }} is {{ $value | printf "%.1f" }}%.',
            "5m",
            "000",
        ),
        Alert(
            "HighCPUUsage",
            '100 - (avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])) * 100)'
            f" > {number(t.node_cpu_percent)}",
            "warning",
            "High CPU usage",
            'CPU usage of {{ $labels.instance }} is {{ $value | printf "%.1f" }}%.',
            "5m",
            "000",
        ),
        Alert(
            "DiskSpaceLow",
            f"node_filesystem_avail_bytes{{{fs}}} / (node_filesystem_size_bytes{{{fs}}} > 0) * 100"
            f" < {number(t.disk_free_percent)}",
            "critical",
            "Low disk space",
            "{{ $labels.mountpoint }} on {{ $labels.instance }} has "
            '{{ $value | printf "%.1f" }}% of its space available.',
            "5m",
            "000",
        ),
        Alert(
            "DiskSpaceHigh",
            f"(node_filesystem_size_bytes{{{fs}}} - node_filesystem_free_bytes{{{fs}}})"
            f" / (node_filesystem_size_bytes{{{fs}}} > 0) > {number(t.disk_used)}",
            "warning",
            "Disk space usage is high",
            "Disk usage is {{ $value | humanizePercentage }} on {{ $labels.device }} ({{ $labels.instance }}).",
            "5m",
            "001",
        ),
    ]
    if settings.mode == "operator":
        # Node conditions come from a cluster-wide kube-state-metrics: the cluster's, not the bundled one.
        alerts.append(
            Alert(
                "KubernetesNodeNotReady",
                'kube_node_status_condition{condition="Ready",status="true"} == 0',
                "warning",
                "Kubernetes node is not ready",
                "Node {{ $labels.node }} has been not ready for more than 5 minutes.",
                "5m",
                "001",
            )
        )
    return alerts


def platform_alerts(settings: MonitoringSettings, namespaces: Sequence[str]) -> list[Alert]:
    return [
        *app_alerts(settings, namespaces),
        *data_alerts(settings, namespaces),
        *kubernetes_alerts(settings, namespaces),
        *node_alerts(settings),
        Alert(
            "Watchdog",
            "vector(1)",
            "none",
            "The alerting pipeline is alive",
            "Always firing. Alertmanager sends it to the dead-man's switch, which pages when it stops arriving.",
            "0s",
        ),
    ]
