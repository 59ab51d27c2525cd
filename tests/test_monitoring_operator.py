"""Operator mode under mocks, for every stack: the Prometheus Operator's custom resources instead of
servers, carrying the selector labels from settings, valid against the operator's published CRDs,
and accepted by the policy pack."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import yaml

from components.config import MonitoringSettings
from components.monitoring.alertmanager_config import INHIBITIONS
from components.monitoring.rules import rule_files
from tests.crd_schemas import validation_errors
from tests.harness import STACKS, TEST_SECRETS, ProgramRun, RecordedResource, run_program, stack_config
from tests.policy.runner import format_violations, run_pack
from tests.test_monitoring_rules import run, tool

SELECTOR = {"release": "kube-prometheus-stack"}
OPERATOR = {"mode": "operator", "operator": {"selectorLabels": SELECTOR}}


@functools.cache
def operator_run(stack: str) -> ProgramRun:
    config, secret_keys = stack_config(stack, overrides={"monitoring": OPERATOR})
    result = run_program(stack, config, secret_keys)
    assert result.error is None, result.error
    return result


@pytest.fixture(params=STACKS)
def program(request: pytest.FixtureRequest) -> ProgramRun:
    return operator_run(request.param)


def custom(program: ProgramRun, kind: str) -> list[RecordedResource]:
    return [r for r in program.resources if r.inputs.get("kind") == kind and "apiVersion" in r.inputs]


def test_no_bundled_servers_and_no_monitoring_namespace(program: ProgramRun) -> None:
    assert {s.inputs["metadata"]["namespace"] for s in program.k8s("StatefulSet")} == {"support-data"}
    assert not program.k8s("Role") and not program.k8s("ClusterRole")  # no kube-state-metrics, no kubelets
    assert [r for r in program.k8s("Namespace") if r.inputs["metadata"]["name"] == "support-monitoring"] == []
    # Production's PgBouncer is the data tier's, not monitoring's.
    assert {r.inputs["metadata"]["name"] for r in program.k8s("Deployment")} - {"pgbouncer"} == {"api", "web"}


@pytest.mark.integration
def test_custom_resources_carry_the_selector_labels_and_match_the_published_crds(program: ProgramRun) -> None:
    # ServiceMonitors: the api's and the data tier's two exporters.
    kinds = {"ServiceMonitor": 3, "PrometheusRule": 1, "AlertmanagerConfig": 1}
    for kind, count in kinds.items():
        found = custom(program, kind)
        assert len(found) == count, kind
        for resource in found:
            labels = resource.inputs["metadata"]["labels"]
            assert labels.items() >= SELECTOR.items(), resource.name
            assert validation_errors(resource.inputs) == [], resource.name


def test_service_monitor_selects_the_declared_metrics_endpoint(program: ProgramRun) -> None:
    monitors = {
        m.inputs["spec"]["namespaceSelector"]["matchNames"][0] + "/" + m.name: m
        for m in custom(program, "ServiceMonitor")
    }
    (api,) = [m for key, m in monitors.items() if key.startswith("support-app/")]
    spec = api.inputs["spec"]
    api_service = program.by_object_name("Service", "api").inputs
    assert api_service["metadata"]["labels"].items() >= spec["selector"]["matchLabels"].items()
    assert spec["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s", "scheme": "http"}]
    exporters = [m.inputs["spec"] for key, m in monitors.items() if key.startswith("support-data/")]
    assert len(exporters) == 2
    for exporter in exporters:
        assert exporter["endpoints"][0]["port"] == "metrics"
        service = program.by_object_name("Service", exporter["selector"]["matchLabels"]["app.kubernetes.io/name"])
        assert service.inputs["metadata"]["labels"].items() >= exporter["selector"]["matchLabels"].items()


@pytest.mark.integration
def test_prometheus_rule_holds_the_generated_rules_and_promtool_accepts_them(
    program: ProgramRun, tmp_path: Path
) -> None:
    (rule,) = custom(program, "PrometheusRule")
    groups = rule.inputs["spec"]["groups"]
    expected = rule_files(MonitoringSettings(), ["support-app", "support-data", "support-monitoring"])
    assert groups == [g for f in expected.values() for g in f["groups"]]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    proc = run(tool("promtool"), "check", "rules", "rules.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alertmanager_config_routes_by_severity_with_webhooks_from_a_secret(program: ProgramRun) -> None:
    (config,) = custom(program, "AlertmanagerConfig")
    spec = config.inputs["spec"]
    routes = {r["matchers"][0]["value"]: r["receiver"] for r in spec["route"]["routes"]}
    assert routes == {"Watchdog": "watchdog", "critical": "critical-alerts", "warning": "warning-alerts"}
    # The same inhibitions as the bundled Alertmanager (tests/test_alertmanager.py runs those).
    assert spec["inhibitRules"][0]["equal"] == ["alertname", "namespace", "service"]
    assert len(spec["inhibitRules"]) == len(INHIBITIONS)
    assert {"name": "alertname", "value": "ServiceDown", "matchType": "="} in spec["inhibitRules"][1]["sourceMatch"]
    hooks = [c for r in spec["receivers"] for c in r.get("webhookConfigs", [])]
    if program.stack == "dev":
        assert hooks == []
    else:
        assert {h["urlSecret"]["name"] for h in hooks} == {"alertmanager-webhooks"}
        secret = program.by_object_name("Secret", "alertmanager-webhooks")
        assert secret.secret_paths == {"stringData"}
        assert set(secret.inputs["stringData"].values()) == {TEST_SECRETS["alertWebhookUrl"]}
    assert TEST_SECRETS["alertWebhookUrl"] not in json.dumps(config.inputs)


def test_dashboards_are_configmaps_with_the_sidecar_label(program: ProgramRun) -> None:
    boards = [r for r in program.k8s("ConfigMap") if r.inputs["metadata"]["name"].startswith("dashboard-")]
    titles = set()
    for board in boards:
        assert board.inputs["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((_, text),) = board.inputs["data"].items()
        titles.add(json.loads(text)["title"])
    assert titles == {"Customer Support Overview", "PostgreSQL", "Redis", "SLO"}


def test_only_the_operators_prometheus_reaches_the_metrics_port(program: ProgramRun) -> None:
    api = next(r for r in program.k8s("NetworkPolicy") if r.inputs["metadata"]["name"] == "api")
    metrics = [r for r in api.inputs["spec"]["ingress"] if "support-monitoring" in json.dumps(r)]
    assert metrics[0]["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "support-monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]


def test_policy_pack_accepts_operator_mode(program: ProgramRun) -> None:
    violations = run_pack(program.resources, program.stack)
    assert violations == [], format_violations(violations)


@pytest.mark.integration
def test_operator_mode_crd_check_catches_a_bad_field(program: ProgramRun) -> None:
    monitor = custom(program, "ServiceMonitor")[0]
    broken = json.loads(json.dumps(monitor.inputs))
    broken["spec"]["endpoints"][0]["intervall"] = "30s"
    assert validation_errors(broken) != []


SLACK_URL = "https://hooks.slack.com/services/T0000/B0000/slacksecret0f1e2d3c"
SMTP_PASSWORD = "smtp-secret-0f1e2d3c4b5a"
NATIVE = {
    **OPERATOR,
    "smtp": {"smarthost": "smtp.example.com:587", "from": "alerts@example.com", "authUsername": "alerts"},
    "receivers": {
        "critical": {"slack": {"channel": "#alerts"}, "email": {"to": ["team@example.com"]}},
        "warning": {"email": {"to": ["team@example.com"]}},
    },
}


@functools.cache
def native_run() -> ProgramRun:
    config, secret_keys = stack_config(
        "production",
        overrides={"monitoring": NATIVE},
        secrets={"slackWebhookUrl": SLACK_URL, "smtpPassword": SMTP_PASSWORD},
    )
    result = run_program("production", config, secret_keys)
    assert result.error is None, result.error
    return result


def test_slack_and_email_receivers_reference_the_secret_and_never_carry_it() -> None:
    result = native_run()
    (config,) = custom(result, "AlertmanagerConfig")
    receivers = {r["name"]: r for r in config.inputs["spec"]["receivers"]}
    (slack,) = receivers["critical-alerts"]["slackConfigs"]
    assert slack["apiURL"] == {"name": "alertmanager-webhooks", "key": "slack"}
    assert (slack["channel"], slack["title"]) == ("#alerts", "Critical Alert")
    (mail,) = receivers["warning-alerts"]["emailConfigs"]
    assert mail["authPassword"] == {"name": "alertmanager-webhooks", "key": "smtp-password"}
    assert mail["headers"] == [{"key": "Subject", "value": "[WARNING] Customer Support Alert"}]
    assert (mail["to"], mail["from"], mail["smarthost"]) == (
        "team@example.com",
        "alerts@example.com",
        "smtp.example.com:587",
    )
    assert "webhookConfigs" not in receivers["critical-alerts"]
    secret = result.by_object_name("Secret", "alertmanager-webhooks")
    assert secret.secret_paths == {"stringData"}
    assert secret.inputs["stringData"] == {
        "watchdog": TEST_SECRETS["alertWebhookUrl"],
        "slack": SLACK_URL,
        "smtp-password": SMTP_PASSWORD,
    }
    for resource in result.resources:
        if resource is not secret:
            text = json.dumps(resource.inputs)
            assert SLACK_URL not in text and SMTP_PASSWORD not in text, resource.name


@pytest.mark.integration
def test_native_receivers_match_the_published_crd() -> None:
    (config,) = custom(native_run(), "AlertmanagerConfig")
    assert validation_errors(config.inputs) == []
