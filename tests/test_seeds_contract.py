"""The platform's own documents against what the program renders for production.

With `../shared/seeds` beside the project (or $SUPPORT_PLATFORM_SEEDS), the alert rules, the
Alertmanager configuration and the Grafana dashboard of 000 (the customer-support agent) and the
alerts of 001 are read from the documents themselves and compared with the production stack's rules,
Alertmanager Secret and dashboards as the program writes them: the same names, `for:`, severities,
thresholds, metric names, routes and panels. Every deliberate difference is in docs/seeds-contract.md
and in DIFFERENCES below; without the documents the comparison cannot run and says so.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.monitoring.alertmanager_config import RECEIVERS
from components.monitoring.rules import rule_files
from tests.harness import ROOT, ProgramRun, run_program
from tests.promql_names import metric_names
from tests.test_monitoring_rules import FULL, NAMESPACES

SEEDS = Path(os.environ.get("SUPPORT_PLATFORM_SEEDS", ROOT.parent / "shared" / "seeds"))
# 001's chat-service alerts that exist here under another name (a different product's service names).
RENAMED = {
    "ChatServiceDown": "ServiceDown",
    "ChatServiceHighMemoryUsage": "ContainerHighMemoryUsage",
    "ChatServiceHighCPUUsage": "ContainerHighCPUUsage",
    "MCPEngineUnreachable": "MCPServerDown",
}
# Alerts whose threshold is written differently on purpose (docs/seeds-contract.md says why).
DIFFERENCES = {
    # 001: `rate(restarts[15m]) > 0`; here `increase(restarts[15m]) >= 1` (thresholds.crashRestarts).
    "KubernetesPodCrashLooping": "threshold",
    # 002 says the MCP server is critical after 5 minutes; 001's engine after 2.
    "MCPEngineUnreachable": "for",
}
# 001 alerts about components this platform does not have (MongoDB, Kafka consumers, a security hub)
# or metrics it cannot have (redis_config_maxclients needs CONFIG, which Redis here renames away).
NOT_APPLICABLE = {
    "ChatServiceHighErrorRate",
    "ChatServiceHighLatency",
    "MessageProcessingStalled",
    "ConversationResponseTimeHigh",
    "MongoDBConnectionsHigh",
    "RedisConnectionsHigh",
    "SecurityHubUnreachable",
}
_THRESHOLD = re.compile(r"(==|>=|<=|>|<)\s*([0-9.]+)\s*$")


def document(prefix: str) -> str:
    if not SEEDS.is_dir():
        pytest.skip(f"the platform's documents are not at {SEEDS} (set SUPPORT_PLATFORM_SEEDS)")
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return path.read_text()


def block(text: str, first_line: str, fence: str = "```yaml") -> str:
    """The fenced code block whose first line is `first_line`."""
    start = text.index(f"{fence}\n{first_line}")
    return text[start + len(fence) + 1 : text.index("```", start + len(fence))]


def document_alerts(prefix: str, first_line: str) -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(block(document(prefix), first_line))["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"]}


@functools.cache
def production() -> ProgramRun:
    run = run_program("production")
    assert run.error is None, run.error
    return run


def rendered_alerts() -> dict[str, dict[str, Any]]:
    files = production().by_object_name("ConfigMap", "prometheus-rules").inputs["data"]
    return {
        r["alert"]: r
        for text in files.values()
        for g in yaml.safe_load(text)["groups"]
        for r in g["rules"]
        if "alert" in r
    }


def full_alerts() -> dict[str, dict[str, Any]]:
    """Where node and cAdvisor metrics are scraped (monitoring.nodeExporter, .cadvisor; operator mode)."""
    return {
        r["alert"]: r
        for f in rule_files(FULL, NAMESPACES).values()
        for g in f["groups"]
        for r in g["rules"]
        if "alert" in r
    }


def threshold(expr: str) -> float:
    match = _THRESHOLD.search(expr.strip())
    assert match, expr
    return float(match.group(2))


def compare(theirs: dict[str, Any], ours: dict[str, Any], name: str) -> None:
    assert ours["labels"]["severity"] == theirs["labels"]["severity"], name
    if DIFFERENCES.get(name) != "for":
        assert ours.get("for", "0s") == theirs.get("for", "0s"), name
    if DIFFERENCES.get(name) != "threshold":
        assert threshold(ours["expr"]) == threshold(theirs["expr"]), (name, ours["expr"])
    missing = metric_names(theirs["expr"]) - metric_names(ours["expr"])
    # 001 reads container_memory_usage_bytes; the OOM killer acts on the working set (docs say why).
    assert missing <= {"container_memory_usage_bytes"}, (name, missing)


def test_000s_alerts_are_productions_with_the_same_names_for_severity_thresholds_and_metrics() -> None:
    theirs = document_alerts("000", "# monitoring/prometheus/rules/alerts.yml")
    assert len(theirs) == 9
    ours, everywhere = rendered_alerts(), full_alerts()
    for name, rule in theirs.items():
        if name in ours:
            compare(rule, ours[name], name)
        else:
            # The node alerts need node_exporter, which production does not scrape by default.
            assert metric_names(rule["expr"]) <= {m for m in metric_names(rule["expr"]) if m.startswith("node_")}, name
            compare(rule, everywhere[name], name)
    assert set(theirs) - set(ours) == {"HighMemoryUsage", "HighCPUUsage", "DiskSpaceLow"}


def test_001s_alerts_are_here_where_this_platform_has_what_they_watch() -> None:
    theirs = document_alerts("001", "groups:")
    assert len(theirs) == 14
    everywhere = full_alerts()
    for name, rule in theirs.items():
        if name in NOT_APPLICABLE:
            continue
        compare(rule, everywhere[RENAMED.get(name, name)], name)
    assert set(theirs) - NOT_APPLICABLE - set(RENAMED) <= set(everywhere)


def test_000s_alertmanager_routes_and_receivers() -> None:
    theirs = yaml.safe_load(block(document("000"), "# monitoring/alertmanager/alertmanager.yml"))
    secret = production().by_object_name("Secret", "alertmanager-config").inputs["stringData"]
    ours = yaml.safe_load(secret["alertmanager.yml"])
    for key in ("group_by", "group_wait", "group_interval", "repeat_interval"):
        assert ours["route"][key] == theirs["route"][key], key
    routed = {r["match"]["severity"]: r["receiver"] for r in theirs["route"]["routes"]}
    for route in ours["route"]["routes"]:
        for severity, receiver in routed.items():
            if route["matchers"] == [f'severity="{severity}"']:
                assert route["receiver"] == receiver
    assert {r["name"] for r in ours["receivers"]} >= {"critical-alerts", "warning-alerts"} == set(routed.values())
    assert set(RECEIVERS.values()) == {r["name"] for r in ours["receivers"]}
    # 000's only inhibition, critical over warning, is the first of ours.
    (rule,) = theirs["inhibit_rules"]
    assert ours["inhibit_rules"][0]["source_matchers"] == [f'severity="{rule["source_match"]["severity"]}"']
    assert ours["inhibit_rules"][0]["target_matchers"] == [f'severity="{rule["target_match"]["severity"]}"']


def test_000s_dashboard_is_productions_overview() -> None:
    text = document("000")
    start = text.index('```json\n{\n  "dashboard"')
    theirs = json.loads(text[start + len("```json\n") : text.index("```", start + 7)])["dashboard"]
    boards = production().by_object_name("ConfigMap", "grafana-dashboards").inputs["data"]
    ours = json.loads(boards["support-overview.json"])
    assert ours["title"] == theirs["title"] and ours["refresh"] == theirs["refresh"]
    assert ours["time"] == theirs["time"] and set(theirs["tags"]) <= set(ours["tags"])
    assert [p["title"] for p in ours["panels"]] == [p["title"] for p in theirs["panels"]]
    for mine, doc in zip(ours["panels"], theirs["panels"], strict=True):
        assert [t["legendFormat"] for t in mine["targets"]] == [t["legendFormat"] for t in doc["targets"]], doc["title"]
        for m, d in zip(mine["targets"], doc["targets"], strict=True):
            assert metric_names(m["expr"]) == metric_names(d["expr"]), (doc["title"], m["expr"], d["expr"])
