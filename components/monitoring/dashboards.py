"""Grafana dashboards as code (grafana-foundation-sdk): the Customer Support Overview, PostgreSQL,
Redis and SLO dashboards, as JSON documents for ConfigMaps. Every query uses only metrics the
platform exposes or the SLO recording rules define; the unit suite parses each with promtool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from components.config import MonitoringSettings
from components.monitoring.rules import SLO_RECORD, number, slo_budgets

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


def _dashboard(uid: str, title: str, panels: list[Any]) -> dict[str, Any]:
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags(["support-platform"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        # Provisioned from code: changes belong in this file, not in the UI.
        .readonly()
    )
    for panel in panels:
        board = board.with_panel(panel)
    document: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return document


def _quantile(q: float, bucket: str) -> str:
    return f"histogram_quantile({q}, sum by ({BY}, le) (rate({bucket}[5m])))"


def overview() -> dict[str, Any]:
    rate = f"sum by ({BY}) (rate(http_requests_total[5m]))"
    return _dashboard(
        "support-overview",
        "Customer Support Overview",
        [
            _stat("Services up", "none", f"sum by ({BY}) (up)", "{{service}}"),
            _stat("Active conversations", "none", "sum(active_conversations)", "conversations"),
            _timeseries("Request rate", "reqps", (rate, "{{service}}")),
            _timeseries(
                "Latency",
                "s",
                *(
                    (_quantile(q, "http_request_duration_seconds_bucket"), f"p{int(q * 100)} {{{{service}}}}")
                    for q in (0.5, 0.95, 0.99)
                ),
            ),
            _timeseries(
                "Error rate",
                "percentunit",
                (f'sum by ({BY}) (rate(http_requests_total{{status=~"5.."}}[5m])) / {rate}', "5xx {{service}}"),
                (f"sum by ({BY}) (rate(errors_total[5m])) / {rate}", "errors {{service}}"),
            ),
            _timeseries(
                "Escalations per minute",
                "none",
                (f"sum by ({BY}) (rate(chat_escalations_total[5m])) * 60", "{{service}}"),
            ),
            _timeseries(
                "Chat messages and latency p95",
                "s",
                (_quantile(0.95, "chat_message_duration_seconds_bucket"), "p95 {{service}}"),
            ),
            _timeseries(
                "RAG queries",
                "reqps",
                ("sum by (status) (rate(rag_queries_total[5m]))", "{{status}}"),
                (
                    'sum(rate(rag_queries_total{status!="success"}[5m])) / sum(rate(rag_queries_total[5m]))',
                    "failure ratio",
                ),
            ),
            _timeseries(
                "Attachment processing",
                "ops",
                ("sum by (status) (rate(attachments_processed_total[5m]))", "{{status}}"),
                (_quantile(0.95, "attachment_processing_duration_seconds_bucket"), "p95 duration {{service}}"),
            ),
        ],
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
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "options": {"path": directory, "foldersFromFilesStructure": False},
            }
        ],
    }
