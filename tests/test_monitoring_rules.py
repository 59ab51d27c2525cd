"""The rules and the Prometheus configuration, proven by Prometheus' own tool (promtool, built from
pinned Go modules by scripts/go-tool.sh): every alert fires on its bad case and stays silent on the
healthy and the no-traffic case, the SLO burns around each threshold, and what the documents' literal
expressions would have done instead."""

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
from components.monitoring.alerts import platform_alerts
from components.monitoring.prometheus_config import prometheus_config
from components.monitoring.promql import le
from components.monitoring.rules import (
    BURN_ALERTS,
    SLO_WINDOWS,
    alerts,
    recorded_metric_names,
    rule_files,
    slo_alerts,
    slo_recording_rules,
)
from tests.exposed_metrics import exposed_metric_names
from tests.harness import ROOT
from tests.monitoring_cases import (
    ALERT_CASES,
    APP,
    APP_LABELS,
    BURN_CASES,
    TMPFS,
    chat_latency,
    messages,
    sel,
    target,
)
from tests.promql_names import metric_names

NAMESPACES = ["support-app", "support-data", "support-monitoring"]
SETTINGS = MonitoringSettings()
# Every alert the program can emit: operator mode (the cluster scrapes nodes and cAdvisor) with the
# container and node alerts on.
FULL = MonitoringSettings.model_validate(
    {
        "mode": "operator",
        "operator": {"selectorLabels": {"release": "kube-prometheus-stack"}},
        "cadvisor": True,
        "nodeExporter": {"enabled": True},
    }
)


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


def rules_of(settings: MonitoringSettings) -> list[dict[str, Any]]:
    return [r for f in rule_files(settings, NAMESPACES).values() for g in f["groups"] for r in g["rules"]]


def alert_names(settings: MonitoringSettings) -> set[str]:
    return {r["alert"] for r in rules_of(settings) if "alert" in r}


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    for rule in (r for r in rules_of(FULL) if "alert" in r):
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "none"), name
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, name
        assert rule["annotations"]["runbook_url"].startswith("https://"), name


def test_container_and_node_alerts_only_where_their_metrics_are_scraped() -> None:
    containers = {"ContainerHighMemoryUsage", "ContainerHighCPUUsage"}
    nodes = {"HighMemoryUsage", "HighCPUUsage", "DiskSpaceLow", "DiskSpaceHigh"}
    assert not alert_names(SETTINGS) & (containers | nodes | {"KubernetesNodeNotReady"})
    bundled = MonitoringSettings.model_validate({"cadvisor": True, "nodeExporter": {"enabled": True}})
    # Bundled kube-state-metrics lists no nodes (it is namespaced): no node condition alert there.
    assert alert_names(bundled) - alert_names(SETTINGS) == containers | nodes
    assert alert_names(FULL) - alert_names(SETTINGS) == containers | nodes | {"KubernetesNodeNotReady"}


def test_thresholds_come_from_settings() -> None:
    custom = MonitoringSettings.model_validate(
        {"thresholds": {"errorRatePercent": 20, "responseTimeP95Seconds": 7.5, "escalationsPerMinute": 3}}
    )
    exprs = {a.name: a.expr for a in platform_alerts(custom, NAMESPACES)}
    assert exprs["HighErrorRate"].endswith("* 100 > 20")
    assert exprs["HighResponseTime"].endswith(" > 7.5")
    assert exprs["EscalationRateHigh"].endswith("* 60 > 3")


def test_ratio_alerts_aggregate_both_sides_by_the_same_labels() -> None:
    for alert in platform_alerts(FULL, NAMESPACES):
        groupings = re.findall(r"(?:sum|max|min|avg) by \(([^)]*)\)", alert.expr)
        if " / " in alert.expr and groupings:
            assert len(set(groupings) - {"namespace, service, le"}) == 1, alert.name
        assert "rate(" not in alert.expr.replace("(rate(", ""), f"{alert.name}: unaggregated rate"


def test_every_selector_of_a_namespaced_metric_is_limited_to_the_platform() -> None:
    # In operator mode the cluster's Prometheus scrapes other teams too: node metrics are the exception.
    node_level = ("node_", "kube_node_status_condition", "vector(")
    for alert in platform_alerts(FULL, NAMESPACES):
        if alert.expr.startswith(node_level) or alert.expr.startswith("100 - ") or "(node_" in alert.expr:
            continue
        for selector in re.findall(r"[a-z_:]+\{[^}]*\}", alert.expr):
            assert 'namespace=~"support-app|support-data|support-monitoring"' in selector, (alert.name, selector)


# --- histogram buckets and Prometheus 3's `le` -----------------------------------------------------------


@pytest.mark.parametrize(
    ("bound", "stored"),
    # Go's strconv 'g' output with ".0" appended where it has neither "." nor "e": what
    # labels.FormatOpenMetricsFloat writes (checked against a Go program for these values).
    [
        (0.005, "0.005"),
        (0.1, "0.1"),
        (1, "1.0"),
        (2, "2.0"),
        (2.5, "2.5"),
        (5, "5.0"),
        (10, "10.0"),
        (100000, "100000.0"),
        (999999, "999999.0"),
        (1e6, "1e+06"),
        (1234567, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-5, "1.5e-05"),
        (float("inf"), "+Inf"),
    ],
)
def test_le_is_written_as_prometheus_3_stores_it(bound: float, stored: str) -> None:
    assert le(bound) == stored


def test_the_latency_sli_reads_a_declared_bucket_in_its_stored_form() -> None:
    def latency_5m(settings: MonitoringSettings) -> str:
        records = slo_recording_rules(settings, NAMESPACES)
        rule = next(r for r in records if r["labels"]["slo"] == "latency" and r["record"].endswith("rate5m"))
        return str(rule["expr"])

    # 000's "p95 < 2s" is no default bucket of the Python client: 2.5 by default, 2.0 once declared.
    ns = 'namespace=~"support-app|support-data|support-monitoring"'
    assert f'chat_message_duration_seconds_bucket{{{ns}, job="api", le="2.5"}}' in latency_5m(SETTINGS)
    declared = MonitoringSettings.model_validate(
        {"histograms": {"chatMessageDurationSeconds": [0.5, 1, 2, 5]}, "slo": {"latencySeconds": 2}}
    )
    assert 'le="2.0"' in latency_5m(declared) and 'le="2"' not in latency_5m(declared)
    five = MonitoringSettings.model_validate({"slo": {"latencySeconds": 5}})
    assert 'le="5.0"' in latency_5m(five)


def test_slo_becomes_recording_rules_per_window_and_burn_alerts() -> None:
    records = slo_recording_rules(SETTINGS, NAMESPACES)
    assert {(r["record"], r["labels"]["slo"]) for r in records} == {
        (f"slo:sli_error:ratio_rate{w}", s) for w in SLO_WINDOWS for s in ("availability", "latency", "errors")
    }
    by_name = {(r["labels"]["slo"], r["record"]): r["expr"] for r in records}
    assert "avg_over_time(up{" in by_name[("availability", "slo:sli_error:ratio_rate1h")]
    errors = by_name[("errors", "slo:sli_error:ratio_rate1h")]
    assert "rate(errors_total{" in errors and "rate(chat_messages_total{" in errors
    burn = {(a.name, a.severity): a.expr for a in slo_alerts(SETTINGS)}
    page = burn[("AvailabilityErrorBudgetBurn", "critical")]
    # budget 0.5 %: 14.4x = 0.072 over 1h and 5m, 6x = 0.03 over 6h and 30m.
    assert 'ratio_rate1h{slo="availability"} > 0.072' in page and 'ratio_rate5m{slo="availability"} > 0.072' in page
    assert 'ratio_rate6h{slo="availability"} > 0.03' in page and 'ratio_rate30m{slo="availability"} > 0.03' in page
    ticket = burn[("AvailabilityErrorBudgetBurn", "warning")]
    assert 'ratio_rate1d{slo="availability"} > 0.015' in ticket and 'ratio_rate2h{slo="availability"} > 0.015' in ticket
    assert 'ratio_rate3d{slo="availability"} > 0.005' in ticket and 'ratio_rate6h{slo="availability"} > 0.005' in ticket
    assert [s for s, _, _ in BURN_ALERTS] == ["critical", "warning"]
    # errors 1 %: page at 14.4 % of chat messages with an error.
    assert 'ratio_rate1h{slo="errors"} > 0.144' in burn[("ErrorsErrorBudgetBurn", "critical")]


def test_every_expression_uses_only_exposed_or_recorded_metrics() -> None:
    known = exposed_metric_names() | recorded_metric_names()
    for rule in rules_of(FULL):
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule['expr']}: {sorted(unknown)} is exposed by no component and recorded by no rule"


def test_metric_name_check_catches_an_unknown_metric() -> None:
    assert metric_names('sum by (service) (rate(http_request_total{status=~"5.."}[5m])) > 1') == {"http_request_total"}
    # The names the program used before 000 was read: the app exports none of them.
    for gone in ("http_requests_total", "active_conversations", "attachments_processed_total"):
        assert gone not in exposed_metric_names()


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    fired = {c.alert for c in ALERT_CASES if "bad" in c.fires_in}
    silent = {c.alert for c in ALERT_CASES if {"healthy", "no traffic"} <= c.inputs.keys()}
    platform = alert_names(FULL) - {a.name for a in slo_alerts(FULL)}
    assert fired == platform
    assert silent == platform - {"Watchdog"}
    assert {a.name for a in alerts(FULL, NAMESPACES)} == alert_names(FULL)


# --- promtool ------------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("settings", [SETTINGS, FULL], ids=["default", "full"])
def test_promtool_check_rules(tmp_path: Path, settings: MonitoringSettings) -> None:
    names = write_rules(tmp_path, rule_files(settings, NAMESPACES))
    proc = run(tool("promtool"), "check", "rules", *names, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.integration
def test_promtool_check_config(tmp_path: Path) -> None:
    settings = MonitoringSettings.model_validate({"cadvisor": True, "nodeExporter": {"enabled": True}})
    write_rules(tmp_path, rule_files(settings, NAMESPACES))
    endpoints = [
        MetricsEndpoint("api", "support-app", "api", "http"),
        MetricsEndpoint("postgres-exporter", "support-data", "postgres", "metrics"),
        MetricsEndpoint("kube-state-metrics", "support-monitoring", "kube-state-metrics", "http", honor_labels=True),
    ]
    alertmanager = MetricsEndpoint("alertmanager", "support-monitoring", "alertmanager", "http")
    config = prometheus_config(settings, endpoints, alertmanager, "dev", NAMESPACES)
    config["rule_files"] = [str(tmp_path / "*.yaml")]
    # promtool checks that the token file exists; in the pod it is the mounted service account token.
    (tmp_path / "token").write_text("test")
    for job in config["scrape_configs"]:
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(tmp_path / "token")
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
    # Latency: 98 % of chat replies slower than 2.5 s burns 19.6x the 5 % budget; errors per chat message
    # at 20 %: 20x the 1 % budget.
    for slo, inputs, fires in (
        ("latency", chat_latency(2, 98), True),
        ("latency", chat_latency(100, 0), False),
        ("latency", chat_latency(0, 0), False),
        ("errors", messages(100, 20), True),
        ("errors", messages(100, 0), False),
        ("errors", messages(0, 0), False),
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
    # A one-minute outage of the only target after two healthy hours is a blip: the long windows keep
    # it from paging (and from ticketing before its 15 minutes).
    blip = [(sel("up", target("api-0")), "1x120 0x1 1x10")]
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


def promtool_test(directory: Path, name: str, rule_names: list[str], tests: list[dict[str, Any]]) -> None:
    document = {"rule_files": rule_names, "evaluation_interval": "1m", "tests": tests}
    path = directory / f"{name}.test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    proc = run(tool("promtool"), "test", "rules", path.name, cwd=directory)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["alerts", "burn rates"])
def test_promtool_test_rules(tmp_path: Path, kind: str) -> None:
    names = write_rules(tmp_path, without_annotations(rule_files(FULL, NAMESPACES)))
    promtool_test(tmp_path, kind.replace(" ", "-"), names, alert_tests() if kind == "alerts" else burn_tests())


# The documents' own expressions, verbatim (000:1066, 000:1138, 001:985), on the inputs the program's
# versions get right: evidence for docs/seeds-contract.md, not the program's rules.
LITERAL_RULES = {
    "groups": [
        {
            "name": "seeds-literal",
            "rules": [
                {
                    "alert": "HighErrorRate",
                    "expr": "rate(errors_total[5m]) / rate(chat_messages_total[5m]) * 100 > 5",
                    "for": "2m",
                },
                {
                    "alert": "RAGQueryFailureRate",
                    "expr": 'rate(rag_queries_total{status="error"}[5m]) / rate(rag_queries_total[5m]) * 100 > 10',
                    "for": "2m",
                },
                {
                    "alert": "ChatServiceHighCPUUsage",
                    "expr": 'rate(container_cpu_usage_seconds_total{pod=~"api-.*"}[5m]) / container_spec_cpu_quota'
                    " * container_spec_cpu_period > 0.8",
                    "for": "5m",
                },
                {
                    "alert": "DiskSpaceLow",
                    "expr": "(node_filesystem_avail_bytes / node_filesystem_size_bytes) * 100 < 10",
                },
            ],
        }
    ]
}


@pytest.mark.integration
def test_the_documents_literal_expressions_get_it_wrong(tmp_path: Path) -> None:
    (tmp_path / "literal.yaml").write_text(yaml.safe_dump(LITERAL_RULES, sort_keys=False))
    cpu = next(c for c in ALERT_CASES if c.alert == "ContainerHighCPUUsage").inputs["bad"]
    rag_healthy = next(c for c in ALERT_CASES if c.alert == "RAGQueryFailureRate").inputs["healthy"]
    literal_cases = [
        # 10 % errors per message: the one-to-one match of `role`-labelled messages finds nothing.
        ("HighErrorRate", messages(100, 10), []),
        # 2 % failures: the error series meets only itself, 100 %.
        ("RAGQueryFailureRate", rag_healthy, [{"exp_labels": {**APP, "status": "error"}}]),
        # 90 % of the CPU limit: `cpu="total"` matches no quota series.
        ("ChatServiceHighCPUUsage", cpu, []),
        # A full tmpfs pages as a full disk.
        (
            "DiskSpaceLow",
            [(sel("node_filesystem_avail_bytes", TMPFS), "5x30"), (sel("node_filesystem_size_bytes", TMPFS), "100x30")],
            [{"exp_labels": TMPFS}],
        ),
    ]
    tests = [
        {
            "name": f"literal {alert}",
            "interval": "1m",
            "input_series": _series(inputs),
            "alert_rule_test": [{"eval_time": "20m", "alertname": alert, "exp_alerts": expected}],
        }
        for alert, inputs, expected in literal_cases
    ]
    promtool_test(tmp_path, "literal", ["literal.yaml"], tests)
