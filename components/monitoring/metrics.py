"""The metric names each scraped component exposes: rules and dashboards may use only these (or a
recording rule's name), and a test parses every expression to hold them to it.

Sources outside this program (the kubelet's volume stats, kube-state-metrics) are listed under
their own names so a rule that depends on them says so.
"""

from __future__ import annotations

from typing import Final

# component -> metric names (histograms list their _bucket/_sum/_count series).
EXPOSED_METRICS: Final[dict[str, frozenset[str]]] = {
    # The FastAPI backend's /metrics (the support system's own instrumentation).
    "api": frozenset(
        {
            "http_requests_total",
            "http_request_duration_seconds_bucket",
            "http_request_duration_seconds_sum",
            "http_request_duration_seconds_count",
            "chat_messages_total",
            "chat_message_duration_seconds_bucket",
            "chat_message_duration_seconds_sum",
            "chat_message_duration_seconds_count",
            "chat_escalations_total",
            "active_conversations",
            "errors_total",
            "rag_queries_total",
            "attachments_processed_total",
            "attachment_processing_duration_seconds_bucket",
            "attachment_processing_duration_seconds_sum",
            "attachment_processing_duration_seconds_count",
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
    # Cluster-provided sources the rules rely on.
    "kubelet": frozenset({"kubelet_volume_stats_available_bytes", "kubelet_volume_stats_capacity_bytes"}),
    "kube-state-metrics": frozenset(
        {"kube_pod_container_status_restarts_total", "kube_cronjob_status_last_successful_time"}
    ),
}


def exposed_metric_names() -> frozenset[str]:
    return frozenset().union(*EXPOSED_METRICS.values())
