"""Grafana dashboards as code (grafana-foundation-sdk): the Customer Support Overview (000's dashboard:
its panels, queries and legends, each aggregated over pods), PostgreSQL, Redis and SLO dashboards, as
JSON documents for ConfigMaps. Every query uses only metrics the platform exposes or the SLO recording
rules define; the unit suite parses each with promtool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from components.config import MonitoringSettings
from components.monitoring.promql import number
from components.monitoring.rules import SLO_RECORD, slo_budgets

DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
BY = "namespace, service"


def _query(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id)


def _timeseries(title: str, unit: str, *queries: tuple[str, str]) -> timeseries.Panel:
    # Two panels a row: the SDK lays panels out left to right in a 24-column grid.
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).height(8).span(12)
    for ref_id, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(_query(expr, legend, ref_id))
    return panel


def _stat(title: str, unit: str, expr: str, legend: str) -> stat.Panel:
    return (
        stat.Panel().title(title).unit(unit).datasource(DATASOURCE).height(8).span(12).with_target(_query(expr, legend))
    )


def _dashboard(
    uid: str, title: str, panels: list[Any], tags: tuple[str, ...] = (), since: str = "now-6h"
) -> dict[str, Any]:
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags([*tags, "support-platform"])
        .refresh("30s")
        .time(since, "now")
        .timezone("browser")
        # Provisioned from code: changes belong in this file, not in the UI.
        .readonly()
    )
    for panel in panels:
        board = board.with_panel(panel)
    document: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return document


def _quantile(q: float, bucket: str, by: str = BY) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({bucket}[5m])))"


def overview() -> dict[str, Any]:
    """000's "Customer Support Overview", panel for panel; each query sums over the pods it reads."""
    messages = "sum(rate(chat_messages_total[5m]))"
    response_time = _timeseries(
        "Response Time",
        "s",
        *(
            (f"histogram_quantile({q}, sum by (le) (rate(chat_message_duration_seconds_bucket[5m])))", legend)
            for q, legend in ((0.5, "50th percentile"), (0.95, "95th percentile"), (0.99, "99th percentile"))
        ),
    )
    error_rate = (
        _timeseries("Error Rate", "percent", (f"sum(rate(errors_total[5m])) / {messages} * 100", "Error Rate %"))
        .min(0)
        .max(100)
    )
    system_health = (
        table.Panel()
        .title("System Health")
        .datasource(DATASOURCE)
        .height(8)
        .span(12)
        .with_target(_query("up", "{{instance}}").instant().format(PromQueryFormat.TABLE))
    )
    return _dashboard(
        "support-overview",
        "Customer Support Overview",
        [
            _timeseries("Request Rate", "reqps", ("sum by (role) (rate(chat_messages_total[5m]))", "{{role}}")),
            response_time,
            error_rate,
            _stat("Active Sessions", "none", "sum(active_sessions)", "Active Sessions"),
            _timeseries(
                "Escalations", "none", ("sum(rate(chat_escalations_total[5m])) * 60", "Escalations per minute")
            ),
            _timeseries("RAG Queries", "reqps", ("sum(rate(rag_queries_total[5m]))", "RAG Queries per second")),
            _timeseries(
                "Attachment Processing",
                "ops",
                ("sum by (content_type) (rate(attachment_processing_total[5m]))", "{{content_type}}"),
            ),
            system_health,
        ],
        tags=("customer-support",),
        since="now-1h",
    )


def postgres() -> dict[str, Any]:
    return _dashboard(
        "support-postgres",
        "PostgreSQL",
        [
            _stat("PostgreSQL up", "none", f"max by ({BY}) (pg_up)", "{{service}}"),
            _timeseries("Connections by state", "none", ("sum by (state) (pg_stat_activity_count)", "{{state}}")),
            _timeseries(
                "Connections used",
                "percentunit",
                (
                    f"sum by ({BY}) (pg_stat_activity_count) / max by ({BY}) (pg_settings_max_connections)",
                    "{{service}}",
                ),
            ),
            _timeseries("Database size", "bytes", ("sum by (datname) (pg_database_size_bytes)", "{{datname}}")),
        ],
    )


def redis() -> dict[str, Any]:
    return _dashboard(
        "support-redis",
        "Redis",
        [
            _stat("Redis up", "none", f"max by ({BY}) (redis_up)", "{{service}}"),
            _timeseries(
                "Memory used of maxmemory",
                "percentunit",
                (
                    f"max by ({BY}) (redis_memory_used_bytes) / max by ({BY}) (redis_memory_max_bytes > 0)",
                    "{{service}}",
                ),
            ),
            _timeseries("Clients", "none", (f"sum by ({BY}) (redis_connected_clients)", "{{service}}")),
            _timeseries(
                "Commands", "ops", (f"sum by ({BY}) (rate(redis_commands_processed_total[5m]))", "{{service}}")
            ),
            _timeseries(
                "Hit ratio",
                "percentunit",
                (
                    f"sum by ({BY}) (rate(redis_keyspace_hits_total[5m])) / (sum by ({BY}) "
                    f"(rate(redis_keyspace_hits_total[5m])) + sum by ({BY}) (rate(redis_keyspace_misses_total[5m])))",
                    "{{service}}",
                ),
            ),
        ],
    )


def slo(settings: MonitoringSettings) -> dict[str, Any]:
    panels: list[Any] = []
    for name, budget in slo_budgets(settings).items():
        ratio = SLO_RECORD.format(window="1h") + f'{{slo="{name}"}}'
        panels.append(
            _timeseries(
                f"{name}: error ratio vs budget ({number(100 - budget * 100)} % objective)",
                "percentunit",
                (ratio, "1h {{service}}"),
                (SLO_RECORD.format(window="3d") + f'{{slo="{name}"}}', "3d {{service}}"),
            )
        )
        panels.append(
            _timeseries(
                f"{name}: burn rate (1 = exactly on budget)",
                "none",
                (f"{ratio} / {number(budget)}", "1h {{service}}"),
                (SLO_RECORD.format(window="6h") + f'{{slo="{name}"}} / {number(budget)}', "6h {{service}}"),
            )
        )
    return _dashboard("support-slo", "SLO", panels)


def dashboards(settings: MonitoringSettings) -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON document."""
    return {
        "support-overview.json": overview(),
        "support-postgres.json": postgres(),
        "support-redis.json": redis(),
        "support-slo.json": slo(settings),
    }


def queries(document: dict[str, Any]) -> Iterator[str]:
    for panel in document.get("panels", []):
        for target in panel.get("targets", []):
            yield target["expr"]


def provider_config(directory: str) -> dict[str, Any]:
    """Grafana's dashboard provider: load every JSON file of `directory`, read-only in the UI."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "support-platform",
                "folder": "Customer Support",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "options": {"path": directory, "foldersFromFilesStructure": False},
            }
        ],
    }
