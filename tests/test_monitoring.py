"""Bundled monitoring under mocks, for every stack: what is deployed, how it is locked down, and
the configuration the program actually writes, checked again by promtool and amtool."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import MonitoringSettings
from components.monitoring.rules import rule_files
from tests.harness import STACKS, TEST_SECRETS, ProgramRun, RecordedResource, run_program, stack_config
from tests.policy.runner import mandatory, run_pack
from tests.test_monitoring_rules import run, tool

MONITORING = "support-monitoring"
SERVERS = ("prometheus", "alertmanager", "grafana")


@functools.cache
def stack_run(stack: str) -> ProgramRun:
    result = run_program(stack)
    assert result.error is None, result.error
    return result


@pytest.fixture(params=STACKS)
def program(request: pytest.FixtureRequest) -> ProgramRun:
    return stack_run(request.param)


def obj(run_: ProgramRun, kind: str, name: str, namespace: str = MONITORING) -> RecordedResource:
    found = [
        r
        for r in run_.k8s(kind)
        if r.inputs["metadata"]["name"] == name and r.inputs["metadata"]["namespace"] == namespace
    ]
    assert len(found) == 1, f"expected one {kind} {namespace}/{name}, found {len(found)}"
    return found[0]


def pod(run_: ProgramRun, kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = obj(run_, kind, name).inputs["spec"]["template"]["spec"]
    return spec


def test_monitoring_namespace_is_restricted(program: ProgramRun) -> None:
    labels = program.by_object_name("Namespace", MONITORING).inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_prometheus_statefulset_with_claim_and_retention(program: ProgramRun) -> None:
    sts = obj(program, "StatefulSet", "prometheus").inputs["spec"]
    (claim,) = sts["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data" and claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    container = sts["template"]["spec"]["containers"][0]
    assert "--storage.tsdb.retention.time=15d" in container["args"]
    assert "--storage.tsdb.retention.size=8GB" in container["args"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/prometheus"] == "data" and mounts["/etc/prometheus/rules"] == "rules"


def test_retention_and_storage_come_from_settings() -> None:
    config, secret_keys = stack_config(
        "dev",
        overrides={"monitoring": {"retention": {"time": "30d", "size": "20GB"}, "storage": {"prometheus": "50Gi"}}},
    )
    result = run_program("dev", config, secret_keys)
    assert result.error is None, result.error
    sts = obj(result, "StatefulSet", "prometheus").inputs["spec"]
    assert "--storage.tsdb.retention.time=30d" in sts["template"]["spec"]["containers"][0]["args"]
    assert "--storage.tsdb.retention.size=20GB" in sts["template"]["spec"]["containers"][0]["args"]
    assert sts["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "50Gi"


def test_every_server_is_hardened_and_only_prometheus_gets_an_api_token(program: ProgramRun) -> None:
    for kind, name in (("StatefulSet", "prometheus"), ("StatefulSet", "alertmanager"), ("Deployment", "grafana")):
        spec = pod(program, kind, name)
        assert spec["serviceAccountName"] == name
        assert spec["automountServiceAccountToken"] is (name == "prometheus"), name
        (container,) = spec["containers"]
        ctx = container["securityContext"]
        assert ctx["runAsNonRoot"] and ctx["runAsUser"] >= 10000 and not ctx["allowPrivilegeEscalation"]
        assert ctx["readOnlyRootFilesystem"] and ctx["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]
        assert container["readinessProbe"] != container["livenessProbe"]
        sa = obj(program, "ServiceAccount", name).inputs
        assert sa["automountServiceAccountToken"] is False


def test_prometheus_may_only_read_pods_services_and_endpointslices_in_the_platform_namespaces(
    program: ProgramRun,
) -> None:
    roles = program.k8s("Role")
    assert {r.inputs["metadata"]["namespace"] for r in roles} == {"support-app", "support-data", MONITORING}
    for role in roles:
        assert role.inputs["rules"] == [
            {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
        ]
    assert not program.k8s("ClusterRole") and not program.k8s("ClusterRoleBinding")
    for binding in program.k8s("RoleBinding"):
        assert binding.inputs["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus", "namespace": MONITORING}]


def prometheus_yaml(run_: ProgramRun) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(obj(run_, "ConfigMap", "prometheus-config").inputs["data"]["prometheus.yml"])
    return data


def test_scrape_jobs_come_from_declared_metrics_endpoints(program: ProgramRun) -> None:
    jobs = {j["job_name"]: j for j in prometheus_yaml(program)["scrape_configs"]}
    # api declares metricsPath; web does not; the data tier's exporters and the monitoring servers
    # declare their own.
    assert set(jobs) == {"api", "postgres-exporter", "redis-exporter", "prometheus", "alertmanager", "grafana"}
    exporter = jobs["postgres-exporter"]
    assert exporter["kubernetes_sd_configs"] == [{"role": "endpointslice", "namespaces": {"names": ["support-data"]}}]
    assert exporter["relabel_configs"][0]["regex"] == "postgres;metrics"
    api = jobs["api"]
    assert api["kubernetes_sd_configs"] == [{"role": "endpointslice", "namespaces": {"names": ["support-app"]}}]
    assert api["relabel_configs"][0]["regex"] == "api;http" and api["metrics_path"] == "/metrics"


def test_rules_configmap_holds_the_generated_rule_files(program: ProgramRun) -> None:
    data = obj(program, "ConfigMap", "prometheus-rules").inputs["data"]
    expected = rule_files(MonitoringSettings(), ["support-app", "support-data", MONITORING])
    assert {k: yaml.safe_load(v) for k, v in data.items()} == expected


def test_the_programs_prometheus_config_passes_promtool(program: ProgramRun, tmp_path: Path) -> None:
    config = prometheus_yaml(program)
    for name, text in obj(program, "ConfigMap", "prometheus-rules").inputs["data"].items():
        (tmp_path / name).write_text(text)
    config["rule_files"] = [str(tmp_path / "*.yaml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = run(tool("promtool"), "check", "config", "prometheus.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alertmanager_config_is_a_secret_that_amtool_accepts(program: ProgramRun, tmp_path: Path) -> None:
    secret = obj(program, "Secret", "alertmanager-config")
    assert secret.secret_paths == {"stringData"}
    text = secret.inputs["stringData"]["alertmanager.yml"]
    config = yaml.safe_load(text)
    hooks = [c["url"] for r in config["receivers"] for c in r.get("webhook_configs", [])]
    if program.stack == "dev":
        assert hooks == []  # alertWebhookUrl unset in dev: alerts show in Alertmanager's UI only
    else:
        assert hooks == [TEST_SECRETS["alertWebhookUrl"]] * 3
    (tmp_path / "alertmanager.yml").write_text(text)
    proc = run(tool("amtool"), "check-config", str(tmp_path / "alertmanager.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for labels, receiver in ((["severity=critical"], "critical"), (["severity=warning"], "warning")):
        routed = run(
            tool("amtool"), "config", "routes", "test", f"--config.file={tmp_path / 'alertmanager.yml'}", *labels
        )
        assert routed.stdout.strip() == receiver
    # The StatefulSet reads it from the Secret, never from a ConfigMap.
    volumes = {v["name"]: v for v in pod(program, "StatefulSet", "alertmanager")["volumes"]}
    assert volumes["config"]["secret"]["secretName"] == "alertmanager-config"


def test_webhook_url_appears_only_in_secret_inputs(program: ProgramRun) -> None:
    for resource in program.resources:
        text = yaml.safe_dump(resource.inputs)
        if TEST_SECRETS["alertWebhookUrl"] in text:
            assert resource.kind == "Secret" and resource.secret_paths == {"stringData"}, resource.name


def test_grafana_admin_password_from_the_generated_secret_and_no_anonymous_access(program: ProgramRun) -> None:
    spec = pod(program, "Deployment", "grafana")
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["GF_SECURITY_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "grafana-admin",
        "key": "password",
    }
    admin = obj(program, "Secret", "grafana-admin")
    assert admin.secret_paths == {"stringData"}
    settings = obj(program, "ConfigMap", "grafana-env").inputs["data"]
    assert settings["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and settings["GF_USERS_ALLOW_SIGN_UP"] == "false"
    datasources = yaml.safe_load(obj(program, "ConfigMap", "grafana-datasources").inputs["data"]["datasources.yaml"])
    (ds,) = datasources["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus.support-monitoring.svc.cluster.local:9090"


def peers(rule: dict[str, Any], key: str) -> list[str]:
    found = []
    for peer in rule[key]:
        if "podSelector" in peer:
            found.append("pod:" + peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
        elif "namespaceSelector" in peer:
            found.append("namespace:" + peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
        else:
            found.append("cidr:" + peer["ipBlock"]["cidr"])
    return found


def test_network_policies_allow_exactly_the_declared_paths(program: ProgramRun) -> None:
    policies = {name: obj(program, "NetworkPolicy", name).inputs["spec"] for name in SERVERS}
    grafana_in = [(peers(r, "from"), [p["port"] for p in r["ports"]]) for r in policies["grafana"]["ingress"]]
    assert grafana_in == [(["pod:prometheus"], [3000])]  # no declared users: port-forward only
    prom_in = [(peers(r, "from"), [p["port"] for p in r["ports"]]) for r in policies["prometheus"]["ingress"]]
    assert prom_in == [(["pod:prometheus", "pod:grafana"], [9090])]
    prom_out = {tuple(peers(r, "to")): sorted(p["port"] for p in r["ports"]) for r in policies["prometheus"]["egress"]}
    assert prom_out[("namespace:support-app",)] == [8000]
    assert prom_out[("namespace:support-monitoring",)] == [3000, 9090, 9093]
    assert prom_out[("cidr:0.0.0.0/0",)] == [443, 6443]
    am_out = policies["alertmanager"]["egress"]
    assert [peers(r, "to") for r in am_out] == [["cidr:0.0.0.0/0"]] and am_out[0]["ports"] == [
        {"protocol": "TCP", "port": 443}
    ]
    assert am_out[0]["to"][0]["ipBlock"]["except"]  # private ranges excluded


def test_declared_users_reach_grafana() -> None:
    config, secret_keys = stack_config("dev", overrides={"monitoring": {"grafana": {"allowFromNamespaces": ["ops"]}}})
    result = run_program("dev", config, secret_keys)
    assert result.error is None, result.error
    ingress = obj(result, "NetworkPolicy", "grafana").inputs["spec"]["ingress"]
    assert [peers(r, "from") for r in ingress] == [["pod:prometheus"], ["namespace:ops"]]


def test_stateful_servers_are_protected_and_retained_in_production(program: ProgramRun) -> None:
    for name in ("prometheus", "alertmanager"):
        sts = obj(program, "StatefulSet", name)
        production = program.stack == "production"
        assert (sts.protect, sts.retain_on_delete) == (production, production), name
        retention = sts.inputs["spec"].get("persistentVolumeClaimRetentionPolicy")
        assert retention == ({"whenDeleted": "Retain", "whenScaled": "Retain"} if production else None)


def test_mode_none_deploys_no_monitoring() -> None:
    config, secret_keys = stack_config("staging", overrides={"monitoring": {"mode": "none"}})
    result = run_program("staging", config, secret_keys)
    assert result.error is None, result.error
    assert not [r for r in result.resources if r.type.startswith("kubernetes:") and "monitoring" in r.urn]
    assert not [s for s in result.k8s("StatefulSet") if s.get("metadata.namespace") == MONITORING]
    assert not result.k8s("Role")


def test_production_refuses_monitoring_images_without_digest() -> None:
    config, secret_keys = stack_config(
        "production", overrides={"monitoring": {"images": {"prometheus": "quay.io/prometheus/prometheus:v3.16.0"}}}
    )
    result = run_program("production", config, secret_keys)
    assert result.error is not None and "monitoring.images.prometheus" in str(result.error)
    assert result.resources == []


def test_only_prometheus_reaches_the_apps_metrics_port(program: ProgramRun) -> None:
    api = obj(program, "NetworkPolicy", "api", "support-app").inputs["spec"]
    prometheus_selector = obj(program, "StatefulSet", "prometheus").inputs["spec"]["selector"]["matchLabels"]
    assert prometheus_selector["app.kubernetes.io/name"] == "prometheus"
    metrics = [r for r in api["ingress"] if any("namespaceSelector" in p and MONITORING in str(p) for p in r["from"])]
    assert metrics == [
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING}},
                    "podSelector": {"matchLabels": prometheus_selector},
                }
            ],
            "ports": [{"protocol": "TCP", "port": "http"}],
        }
    ]


def test_without_monitoring_the_metrics_port_is_closed() -> None:
    config, secret_keys = stack_config("dev", overrides={"monitoring": {"mode": "none"}})
    result = run_program("dev", config, secret_keys)
    assert result.error is None, result.error
    api = obj(result, "NetworkPolicy", "api", "support-app").inputs["spec"]
    assert MONITORING not in str(api["ingress"])


def test_grafana_provisions_the_generated_dashboards(program: ProgramRun) -> None:
    boards = obj(program, "ConfigMap", "grafana-dashboards").inputs["data"]
    assert {json.loads(v)["title"] for v in boards.values()} == {
        "Customer Support Overview",
        "PostgreSQL",
        "Redis",
        "SLO",
    }
    provider = yaml.safe_load(obj(program, "ConfigMap", "grafana-dashboard-provider").inputs["data"]["dashboards.yaml"])
    (entry,) = provider["providers"]
    mounts = {m["name"]: m["mountPath"] for m in pod(program, "Deployment", "grafana")["containers"][0]["volumeMounts"]}
    assert entry["options"]["path"] == mounts["dashboards"] == "/etc/grafana/dashboards"
    assert mounts["dashboard-provider"] == "/etc/grafana/provisioning/dashboards"


# --- unsafe changes to the production monitoring, each caught by the pack -------------------------


def _monitoring_pod(records: list[RecordedResource], name: str) -> dict[str, Any]:
    resource = next(r for r in records if r.name == f"monitoring-{name}" and r.kind in ("StatefulSet", "Deployment"))
    spec: dict[str, Any] = resource.inputs["spec"]["template"]["spec"]
    return spec


def _unprotect(records: list[RecordedResource]) -> None:
    next(r for r in records if r.name == "monitoring-prometheus").protect = False


def _grafana_token(records: list[RecordedResource]) -> None:
    _monitoring_pod(records, "grafana")["automountServiceAccountToken"] = True


def _alertmanager_writable_root(records: list[RecordedResource]) -> None:
    _monitoring_pod(records, "alertmanager")["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False


def _prometheus_no_limits(records: list[RecordedResource]) -> None:
    del _monitoring_pod(records, "prometheus")["containers"][0]["resources"]["limits"]


def _grafana_tag_only(records: list[RecordedResource]) -> None:
    _monitoring_pod(records, "grafana")["containers"][0]["image"] = "docker.io/grafana/grafana:11.6.0"


@pytest.mark.parametrize(
    ("mutation", "policy_name"),
    [
        (_unprotect, "protect-stateful-resources"),
        (_grafana_token, "no-service-account-token-automount"),
        (_alertmanager_writable_root, "read-only-root-filesystem"),
        (_prometheus_no_limits, "container-resources"),
        (_grafana_tag_only, "image-tag-pinned"),
    ],
    ids=[
        "prometheus-unprotected",
        "grafana-token",
        "alertmanager-writable-root",
        "prometheus-no-limits",
        "grafana-tag",
    ],
)
def test_unsafe_monitoring_change_is_caught_in_production(mutation: Any, policy_name: str) -> None:
    records = copy.deepcopy(stack_run("production").resources)
    assert mandatory(run_pack(records, "production")) == []
    mutation(records)
    caught = {v.policy for v in mandatory(run_pack(records, "production"))}
    assert policy_name in caught, caught
