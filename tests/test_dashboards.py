"""The Grafana dashboards: 000's Customer Support Overview panel for panel, every query parsed by
promtool and limited to metrics some component exposes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.config import MonitoringSettings
from components.monitoring.dashboards import dashboards, overview, provider_config, queries
from components.monitoring.rules import recorded_metric_names
from tests.exposed_metrics import exposed_metric_names
from tests.promql_names import metric_names
from tests.test_monitoring_rules import run, tool

SETTINGS = MonitoringSettings()
# 000's "Customer Support Overview": title -> (panel type, queried metrics, legends), in its order.
OVERVIEW_000 = [
    ("Request Rate", "timeseries", {"chat_messages_total"}, ["{{role}}"]),
    (
        "Response Time",
        "timeseries",
        {"chat_message_duration_seconds_bucket"},
        ["50th percentile", "95th percentile", "99th percentile"],
    ),
    ("Error Rate", "timeseries", {"errors_total", "chat_messages_total"}, ["Error Rate %"]),
    ("Active Sessions", "stat", {"active_sessions"}, ["Active Sessions"]),
    ("Escalations", "timeseries", {"chat_escalations_total"}, ["Escalations per minute"]),
    ("RAG Queries", "timeseries", {"rag_queries_total"}, ["RAG Queries per second"]),
    ("Attachment Processing", "timeseries", {"attachment_processing_total"}, ["{{content_type}}"]),
    ("System Health", "table", {"up"}, ["{{instance}}"]),
]


def dashboard_queries() -> list[tuple[str, str]]:
    return [(d["title"], q) for d in dashboards(SETTINGS).values() for q in queries(d)]


def test_the_overview_is_000s_dashboard() -> None:
    board = overview()
    assert board["title"] == "Customer Support Overview"
    assert "customer-support" in board["tags"] and board["time"] == {"from": "now-1h", "to": "now"}
    assert board["refresh"] == "30s" and board["timezone"] == "browser"
    panels = [
        (
            p["title"],
            p["type"],
            set().union(*(metric_names(t["expr"]) for t in p["targets"])),
            [t["legendFormat"] for t in p["targets"]],
        )
        for p in board["panels"]
    ]
    assert panels == OVERVIEW_000
    units = {p["title"]: p.get("fieldConfig", {}).get("defaults", {}) for p in board["panels"]}
    assert units["Error Rate"] == {"unit": "percent", "min": 0, "max": 100}
    assert units["Response Time"]["unit"] == "s" and units["Request Rate"]["unit"] == "reqps"


def test_dashboards_cover_the_overview_postgres_redis_and_slo() -> None:
    boards = dashboards(SETTINGS)
    assert {d["title"] for d in boards.values()} == {"Customer Support Overview", "PostgreSQL", "Redis", "SLO"}
    for board in boards.values():
        assert board["uid"].startswith("support-") and board["editable"] is False
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(set(ref_ids)) == len(ref_ids) and all(ref_ids), panel["title"]


def test_dashboards_load_read_only_into_000s_folder() -> None:
    (provider,) = provider_config("/etc/grafana/dashboards")["providers"]
    assert provider["folder"] == "Customer Support"
    assert provider["disableDeletion"] is True and provider["allowUiUpdates"] is False


@pytest.mark.integration
def test_every_dashboard_query_parses_with_promtool(tmp_path: Path) -> None:
    # Each query as a recording rule: `promtool check rules` runs Prometheus' parser over it.
    rules = [{"record": f"dashboard:query{i}", "expr": q} for i, (_, q) in enumerate(dashboard_queries())]
    (tmp_path / "dashboards.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = run(tool("promtool"), "check", "rules", "dashboards.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout


def test_every_dashboard_query_uses_only_exposed_or_recorded_metrics() -> None:
    known = exposed_metric_names() | recorded_metric_names()
    for title, expr in dashboard_queries():
        unknown = metric_names(expr) - known
        assert not unknown, f"{title}: {expr}: {sorted(unknown)}"
