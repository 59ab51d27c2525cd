"""The rules, the Prometheus configuration and the Alertmanager configuration, proven by Prometheus'
own tools (promtool and amtool, built from pinned Go modules by scripts/go-tool.sh)."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import MonitoringSettings
from components.contracts import MetricsEndpoint
from components.monitoring.alertmanager_config import alertmanager_config
from components.monitoring.dashboards import dashboards, queries
from components.monitoring.prometheus_config import prometheus_config
from components.monitoring.rules import (
    BURN_ALERTS,
    SLO_WINDOWS,
    platform_alerts,
    recorded_metric_names,
    rule_files,
    slo_alerts,
    slo_recording_rules,
)
from tests.exposed_metrics import exposed_metric_names
from tests.harness import ROOT
from tests.monitoring_cases import ALERT_CASES, APP, APP_LABELS, BURN_CASES, latency, requests
from tests.promql_names import metric_names

NAMESPACES = ["support-app", "support-data", "support-monitoring"]
SETTINGS = MonitoringSettings()
REQUIRED_ALERTS = {
    "HighErrorRate",
    "HighResponseTime",
    "ServiceDown",
    "DatabaseConnectionsHigh",
    "EscalationRateHigh",
    "RAGQueryFailureRate",
    "PostgresDown",
    "RedisDown",
    "RedisMemoryHigh",
    "PersistentVolumeFillingUp",
    "PodCrashLooping",
    "BackupMissing",
    "Watchdog",
}


@functools.cache
def tool(name: str) -> str:
    # Built on first use, never skipped: a missing Go toolchain fails the run with go-tool.sh's message.
    proc = subprocess.run([str(ROOT / "scripts" / "go-tool.sh"), name], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, cwd=cwd, timeout=300)


def write_rules(directory: Path, files: dict[str, dict[str, Any]]) -> list[str]:
    for name, content in files.items():
        (directory / name).write_text(yaml.safe_dump(content, sort_keys=False))
    return sorted(files)


def without_annotations(files: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """promtool test compares annotations too; their templates are checked by `check rules`, so the
    unit tests look at what fires and with which labels."""
    return {
        name: {
            "groups": [
                {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
                for g in content["groups"]
            ]
        }
        for name, content in files.items()
    }


def all_expressions() -> list[str]:
    return [r["expr"] for f in rule_files(SETTINGS, NAMESPACES).values() for g in f["groups"] for r in g["rules"]]


def test_every_required_alert_has_severity_summary_description_and_runbook() -> None:
    rules = [r for f in rule_files(SETTINGS, NAMESPACES).values() for g in f["groups"] for r in g["rules"]]
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    assert alerts.keys() >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning", "none"), name
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, name
        assert rule["annotations"]["runbook_url"].startswith("https://"), name


def test_thresholds_come_from_settings() -> None:
    custom = MonitoringSettings.model_validate({"thresholds": {"errorRate": 0.2, "responseTimeP95Seconds": 3.5}})
    exprs = {a.name: a.expr for a in platform_alerts(custom, NAMESPACES)}
    assert "> 0.2)" in exprs["HighErrorRate"]
    assert "> 3.5)" in exprs["HighResponseTime"]


def test_ratio_alerts_aggregate_both_sides_by_the_same_labels() -> None:
    for alert in platform_alerts(SETTINGS, NAMESPACES):
        for rate in re.findall(r"(sum|max|min) by \(([^)]*)\) \(rate\(", alert.expr):
            assert rate[1] in ("namespace, service", "namespace, service, le"), alert.name
        assert "rate(" not in alert.expr.replace("(rate(", ""), f"{alert.name}: unaggregated rate"


def test_slo_becomes_recording_rules_per_window_and_burn_alerts() -> None:
    records = slo_recording_rules(SETTINGS)
    assert {(r["record"], r["labels"]["slo"]) for r in records} == {
        (f"slo:sli_error:ratio_rate{w}", s) for w in SLO_WINDOWS for s in ("availability", "latency", "errors")
    }
    latency_5m = next(r for r in records if r["labels"]["slo"] == "latency" and r["record"].endswith("rate5m"))
    assert 'le="2"' in latency_5m["expr"]
    burn = {(a.name, a.severity): a.expr for a in slo_alerts(SETTINGS)}
    page = burn[("AvailabilityErrorBudgetBurn", "critical")]
    # budget 0.5 %: 14.4x = 0.072 over 1h and 5m, 6x = 0.03 over 6h and 30m.
    assert 'ratio_rate1h{slo="availability"} > 0.072' in page and 'ratio_rate5m{slo="availability"} > 0.072' in page
    assert 'ratio_rate6h{slo="availability"} > 0.03' in page and 'ratio_rate30m{slo="availability"} > 0.03' in page
    ticket = burn[("AvailabilityErrorBudgetBurn", "warning")]
    assert 'ratio_rate1d{slo="availability"} > 0.015' in ticket and 'ratio_rate2h{slo="availability"} > 0.015' in ticket
    assert 'ratio_rate3d{slo="availability"} > 0.005' in ticket and 'ratio_rate6h{slo="availability"} > 0.005' in ticket
    assert [s for s, _, _ in BURN_ALERTS] == ["critical", "warning"]
    # errors 1 %: page at 14.4 % of requests with an application error.
    assert 'ratio_rate1h{slo="errors"} > 0.144' in burn[("ErrorsErrorBudgetBurn", "critical")]


@pytest.mark.integration
def test_promtool_check_rules(tmp_path: Path) -> None:
    names = write_rules(tmp_path, rule_files(SETTINGS, NAMESPACES))
    proc = run(tool("promtool"), "check", "rules", *names, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_expression_uses_only_exposed_or_recorded_metrics() -> None:
    known = exposed_metric_names() | recorded_metric_names(SETTINGS)
    for expr in all_expressions():
        unknown = metric_names(expr) - known
        assert not unknown, f"{expr}: {sorted(unknown)} is exposed by no component and recorded by no rule"


def test_metric_name_check_catches_an_unknown_metric() -> None:
    assert metric_names('sum by (service) (rate(http_request_total{status=~"5.."}[5m])) > 1') == {"http_request_total"}
    assert "http_request_total" not in exposed_metric_names()


@pytest.mark.integration
def test_promtool_check_config(tmp_path: Path) -> None:
    write_rules(tmp_path, rule_files(SETTINGS, NAMESPACES))
    endpoints = [
        MetricsEndpoint("api", "support-app", "api", "http"),
        MetricsEndpoint("postgres-exporter", "support-data", "postgres", "metrics"),
        MetricsEndpoint("kube-state-metrics", "support-monitoring", "kube-state-metrics", "http", honor_labels=True),
    ]
    alertmanager = MetricsEndpoint("alertmanager", "support-monitoring", "alertmanager", "http")
    config = prometheus_config(SETTINGS, endpoints, alertmanager, "dev")
    config["rule_files"] = [str(tmp_path / "*.yaml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc = run(tool("promtool"), "check", "config", "prometheus.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def _series(inputs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"series": s, "values": v} for s, v in inputs]


def alert_tests() -> list[dict[str, Any]]:
    tests = []
    for case in ALERT_CASES:
        for name, inputs in case.inputs.items():
            expected = []
            if name in case.fires_in:
                expected = [{"exp_labels": {**case.labels, "severity": case.severity}}]
            tests.append(
                {
                    "name": f"{case.alert}: {name}",
                    "interval": case.interval,
                    "input_series": _series(inputs),
                    "alert_rule_test": [{"eval_time": case.eval_time, "alertname": case.alert, "exp_alerts": expected}],
                }
            )
    return tests


def burn_tests() -> list[dict[str, Any]]:
    tests = []
    for name, inputs, eval_time, severities in BURN_CASES:
        expected = [{"exp_labels": {**APP_LABELS, "slo": "availability", "severity": s}} for s in severities]
        tests.append(
            {
                "name": f"availability burn: {name}",
                "interval": "1m",
                "input_series": _series(inputs),
                "alert_rule_test": [
                    {"eval_time": eval_time, "alertname": "AvailabilityErrorBudgetBurn", "exp_alerts": expected}
                ],
            }
        )
    # Latency: 98 % of requests slower than 2 s burns 39x the 5 % budget; errors_total at 20 %: 20x.
    for slo, inputs, fires in (
        ("latency", latency(2, 98), True),
        ("latency", latency(100, 0), False),
        ("latency", latency(0, 0), False),
        ("errors", [*requests(100, 0), (f"errors_total{{{APP}}}", "0+20x60")], True),
        ("errors", [*requests(100, 0), (f"errors_total{{{APP}}}", "0+0x60")], False),
        ("errors", [*requests(0, 0), (f"errors_total{{{APP}}}", "0+0x60")], False),
    ):
        labels = {**APP_LABELS, "slo": slo}
        expected = [{"exp_labels": {**labels, "severity": s}} for s in ("critical", "warning")] if fires else []
        tests.append(
            {
                "name": f"{slo} burn: {inputs[0][1]} / fires={fires}",
                "interval": "1m",
                "input_series": _series(inputs),
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": f"{slo.title()}ErrorBudgetBurn", "exp_alerts": expected}
                ],
            }
        )
    # A one-minute outage after two healthy hours is a blip: the 1h window keeps it from paging.
    blip = [
        (f'http_requests_total{{{APP},status="200"}}', "0+1000x120 120000x1 121000+1000x10"),
        (f'http_requests_total{{{APP},status="500"}}', "0x120 1000x1 1000x10"),
    ]
    tests.append(
        {
            "name": "availability burn: a one-minute outage does not page",
            "interval": "1m",
            "input_series": _series(blip),
            "alert_rule_test": [
                {"eval_time": "128m", "alertname": "AvailabilityErrorBudgetBurn", "exp_alerts": []},
            ],
        }
    )
    return tests


@pytest.fixture(scope="module")
def rules_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("rules")
    write_rules(directory, without_annotations(rule_files(SETTINGS, NAMESPACES)))
    return directory


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["alerts", "burn rates"])
def test_promtool_test_rules(rules_directory: Path, kind: str) -> None:
    tests = alert_tests() if kind == "alerts" else burn_tests()
    document = {
        "rule_files": sorted(p.name for p in rules_directory.glob("*.yaml") if p.name != "tests.yaml"),
        "evaluation_interval": "1m",
        "tests": tests,
    }
    path = rules_directory / f"tests-{kind.replace(' ', '-')}.test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    proc = run(tool("promtool"), "test", "rules", path.name, cwd=rules_directory)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    fired = {c.alert for c in ALERT_CASES if "bad" in c.fires_in}
    silent = {c.alert for c in ALERT_CASES if {"healthy", "no traffic"} <= c.inputs.keys()}
    assert fired == REQUIRED_ALERTS
    assert silent == REQUIRED_ALERTS - {"Watchdog"}


def write_alertmanager(directory: Path, secrets: dict[str, str | None]) -> Path:
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(alertmanager_config(SETTINGS, secrets), sort_keys=False))
    return path


@pytest.mark.integration
@pytest.mark.parametrize("webhook", ["https://hooks.example.com/T000/alerts", None], ids=["webhook", "unset-dev"])
def test_amtool_check_config(tmp_path: Path, webhook: str | None) -> None:
    path = write_alertmanager(tmp_path, {"alertWebhookUrl": webhook})
    proc = run(tool("amtool"), "check-config", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.integration
@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=HighErrorRate", "severity=critical", "namespace=support-app"], "critical"),
        (["alertname=HighResponseTime", "severity=warning", "namespace=support-app"], "warning"),
        (["alertname=Watchdog", "severity=none"], "watchdog"),
        (["alertname=SomethingNew"], "warning"),
    ],
)
def test_amtool_routes(tmp_path: Path, labels: list[str], receiver: str) -> None:
    path = write_alertmanager(tmp_path, {"alertWebhookUrl": "https://hooks.example.com/T000/alerts"})
    proc = run(tool("amtool"), "config", "routes", "test", f"--config.file={path}", *labels)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receiver


def test_critical_inhibits_warning_of_the_same_alert_and_namespace() -> None:
    config = alertmanager_config(SETTINGS, {"alertWebhookUrl": "https://hooks.example.com/x"})
    assert config["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["alertname", "namespace"],
        }
    ]
    route = config["route"]
    assert route["group_by"] == ["alertname", "namespace", "service"] and route["repeat_interval"] == "4h"
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["watchdog"]["webhook_configs"][0]["send_resolved"] is False
    dev = alertmanager_config(SETTINGS, {"alertWebhookUrl": None})
    assert all("webhook_configs" not in r for r in dev["receivers"])


# --- dashboards ----------------------------------------------------------------------------------


def dashboard_queries() -> list[tuple[str, str]]:
    return [(d["title"], q) for d in dashboards(SETTINGS).values() for q in queries(d)]


def test_dashboards_cover_the_overview_postgres_redis_and_slo() -> None:
    boards = dashboards(SETTINGS)
    assert {d["title"] for d in boards.values()} == {"Customer Support Overview", "PostgreSQL", "Redis", "SLO"}
    overview = next(d for d in boards.values() if d["title"] == "Customer Support Overview")
    assert {p["title"] for p in overview["panels"]} == {
        "Services up",
        "Active conversations",
        "Request rate",
        "Latency",
        "Error rate",
        "Escalations per minute",
        "Chat messages and latency p95",
        "RAG queries",
        "Attachment processing",
    }
    for board in boards.values():
        assert board["uid"].startswith("support-") and board["editable"] is False
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(set(ref_ids)) == len(ref_ids) and all(ref_ids), panel["title"]


@pytest.mark.integration
def test_every_dashboard_query_parses_with_promtool(tmp_path: Path) -> None:
    # Each query as a recording rule: `promtool check rules` runs Prometheus' parser over it.
    rules = [{"record": f"dashboard:query{i}", "expr": q} for i, (_, q) in enumerate(dashboard_queries())]
    (tmp_path / "dashboards.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = run(tool("promtool"), "check", "rules", "dashboards.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout


def test_every_dashboard_query_uses_only_exposed_or_recorded_metrics() -> None:
    known = exposed_metric_names() | recorded_metric_names(SETTINGS)
    for title, expr in dashboard_queries():
        unknown = metric_names(expr) - known
        assert not unknown, f"{title}: {expr}: {sorted(unknown)}"
