"""The metric names each scraped component exposes: rules and dashboards may use only these (or a
recording rule's name), and a test parses every expression to hold them to it.

Each key is the scrape job (the `job` label) that brings the names in. Two are not the platform's
own software: kube-state-metrics (deployed in bundled mode unless monitoring.kubeStateMetrics is off)
and the nodes' kubelet, cAdvisor and node_exporter (scraped in bundled mode only with
monitoring.kubeletVolumeStats, .cadvisor and .nodeExporter, since they need a ClusterRole). In operator
mode the cluster's kube-prometheus-stack scrapes them all.
"""

from __future__ import annotations

from typing import Final

# component -> metric names (histograms list their _bucket/_sum/_count series).
EXPOSED_METRICS: Final[dict[str, frozenset[str]]] = {
    # The FastAPI backend's /metrics: the customer-support agent's own instrumentation, as 000 (its alert
    # rules and dashboard) names it. 000 attests no HTTP metrics of the api.
    "api": frozenset(
        {
            "chat_messages_total",
            "chat_message_duration_seconds_bucket",
            "chat_message_duration_seconds_sum",
            "chat_message_duration_seconds_count",
            "chat_escalations_total",
            "active_sessions",
            "errors_total",
            "rag_queries_total",
            "attachment_processing_total",
        }
    ),
    # prometheus-community/postgres_exporter next to PostgreSQL.
    "postgres-exporter": frozenset(
        {"pg_up", "pg_stat_activity_count", "pg_settings_max_connections", "pg_database_size_bytes"}
    ),
    # oliver006/redis_exporter next to Redis.
    "redis-exporter": frozenset(
        {
            "redis_up",
            "redis_memory_used_bytes",
            "redis_memory_max_bytes",
            "redis_connected_clients",
            "redis_commands_processed_total",
            "redis_keyspace_hits_total",
            "redis_keyspace_misses_total",
        }
    ),
    # Prometheus itself: `up` for every target, and its own health.
    "prometheus": frozenset({"up", "prometheus_tsdb_head_series", "prometheus_rule_evaluation_failures_total"}),
    "alertmanager": frozenset({"alertmanager_notifications_failed_total", "alertmanager_notifications_total"}),
    "grafana": frozenset({"grafana_http_request_duration_seconds_count"}),
    # kube-state-metrics (--resources pods,cronjobs,...): PodCrashLooping, BackupMissing.
    "kube-state-metrics": frozenset(
        {"kube_pod_container_status_restarts_total", "kube_cronjob_status_last_successful_time"}
    ),
    # The kubelet's volume stats (the job keeps only these): PersistentVolumeFillingUp.
    "kubelet": frozenset({"kubelet_volume_stats_available_bytes", "kubelet_volume_stats_capacity_bytes"}),
    # The kubelets' cAdvisor (the job keeps only these): the container alerts.
    "cadvisor": frozenset(
        {
            "container_cpu_usage_seconds_total",
            "container_memory_working_set_bytes",
            "container_spec_memory_limit_bytes",
            "container_spec_cpu_quota",
            "container_spec_cpu_period",
        }
    ),
    # node_exporter on every node (the job keeps only these): the node alerts.
    "node-exporter": frozenset(
        {
            "node_memory_MemTotal_bytes",
            "node_memory_MemAvailable_bytes",
            "node_cpu_seconds_total",
            "node_filesystem_avail_bytes",
            "node_filesystem_free_bytes",
            "node_filesystem_size_bytes",
        }
    ),
    # A cluster-wide kube-state-metrics (operator mode: the cluster's): node conditions.
    "cluster-kube-state-metrics": frozenset({"kube_node_status_condition"}),
}
# The setting that decides whether bundled mode scrapes each source that is not always there.
OPTIONAL_SOURCES: Final[dict[str, str]] = {
    "kube-state-metrics": "monitoring.kubeStateMetrics.enabled (default true)",
    "kubelet": "monitoring.kubeletVolumeStats (default false)",
    "cadvisor": "monitoring.cadvisor (default false)",
    "node-exporter": "monitoring.nodeExporter.enabled (default false)",
    "cluster-kube-state-metrics": "operator mode only (the cluster's kube-state-metrics lists nodes)",
}


def exposed_metric_names() -> frozenset[str]:
    return frozenset().union(*EXPOSED_METRICS.values())


def sources_of(metric: str) -> frozenset[str]:
    """The scrape jobs a metric name comes from (`up` comes from Prometheus, for every target)."""
    return frozenset(source for source, names in EXPOSED_METRICS.items() if metric in names)
