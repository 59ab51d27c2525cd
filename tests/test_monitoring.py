"""Bundled monitoring under mocks, for every stack: what is deployed, how it is locked down, and
the configuration the program actually writes, checked again by promtool and amtool."""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import MonitoringSettings
from components.monitoring.alerts import platform_alerts
from components.monitoring.rules import rule_files
from tests.exposed_metrics import OPTIONAL_SOURCES, sources_of
from tests.harness import (
    ROOT,
    STACKS,
    TEST_SECRETS,
    ProgramRun,
    RecordedResource,
    raw_stack_value,
    run_program,
    stack_config,
)
from tests.policy.runner import mandatory, run_pack
from tests.promql_names import metric_names
from tests.test_monitoring_rules import run, tool

MONITORING = "support-monitoring"
SERVERS = ("prometheus", "alertmanager", "grafana")
KSM = "kube-state-metrics"
PLATFORM_NAMESPACES = {"support-app", "support-data", MONITORING}
KSM_RESOURCES = "cronjobs,deployments,jobs,persistentvolumeclaims,pods,statefulsets"
API_ANNOTATION = "support-platform.io/needs-kubernetes-api"
CLUSTER_SCOPE = "support-platform.io/cluster-scope"


@functools.cache
def stack_run(stack: str) -> ProgramRun:
    result = run_program(stack)
    assert result.error is None, result.error
    return result


def run_with(stack: str, monitoring: dict[str, Any]) -> ProgramRun:
    config, secret_keys = stack_config(stack, overrides={"monitoring": monitoring})
    result = run_program(stack, config, secret_keys)
    assert result.error is None, result.error
    return result


@functools.cache
def kubelet_run(stack: str) -> ProgramRun:
    return run_with(stack, {"kubeletVolumeStats": True})


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


def test_every_server_is_hardened_and_only_the_api_readers_get_a_token(program: ProgramRun) -> None:
    for kind, name in (
        ("StatefulSet", "prometheus"),
        ("StatefulSet", "alertmanager"),
        ("Deployment", "grafana"),
        ("Deployment", KSM),
    ):
        spec = pod(program, kind, name)
        assert spec["serviceAccountName"] == name
        reads_api = name in ("prometheus", KSM)
        assert spec["automountServiceAccountToken"] is reads_api, name
        # The pack allows a token only where the workload says why (no-service-account-token-automount).
        assert bool(obj(program, kind, name).inputs["metadata"].get("annotations", {}).get(API_ANNOTATION)) is reads_api
        (container,) = spec["containers"]
        ctx = container["securityContext"]
        assert ctx["runAsNonRoot"] and ctx["runAsUser"] >= 10000 and not ctx["allowPrivilegeEscalation"]
        assert ctx["readOnlyRootFilesystem"] and ctx["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]
        assert container["readinessProbe"] != container["livenessProbe"]
        sa = obj(program, "ServiceAccount", name).inputs
        assert sa["automountServiceAccountToken"] is False


def _named(resources: list[RecordedResource], name: str) -> list[RecordedResource]:
    return [r for r in resources if r.inputs["metadata"]["name"] == name]


def test_prometheus_may_only_read_pods_services_and_endpointslices_in_the_platform_namespaces(
    program: ProgramRun,
) -> None:
    roles = _named(program.k8s("Role"), "prometheus-discovery")
    assert {r.inputs["metadata"]["namespace"] for r in roles} == PLATFORM_NAMESPACES
    for role in roles:
        assert role.inputs["rules"] == [
            {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
        ]
    assert {r.inputs["metadata"]["name"] for r in program.k8s("Role")} == {"prometheus-discovery", KSM}
    assert not program.k8s("ClusterRole") and not program.k8s("ClusterRoleBinding")
    for binding in _named(program.k8s("RoleBinding"), "prometheus-discovery"):
        assert binding.inputs["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus", "namespace": MONITORING}]


def test_kube_state_metrics_lists_and_watches_only_its_resources_in_the_platform_namespaces(
    program: ProgramRun,
) -> None:
    (container,) = pod(program, "Deployment", KSM)["containers"]
    assert container["image"].startswith("registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.")
    assert container["args"] == [
        "--port=8080",
        "--telemetry-port=8081",
        f"--namespaces={','.join(sorted(PLATFORM_NAMESPACES))}",
        f"--resources={KSM_RESOURCES}",
    ]
    roles = _named(program.k8s("Role"), KSM)
    assert {r.inputs["metadata"]["namespace"] for r in roles} == PLATFORM_NAMESPACES
    granted = set()
    for role in roles:
        for rule in role.inputs["rules"]:
            assert rule["verbs"] == ["list", "watch"], rule
            granted |= {(rule["apiGroups"][0], r) for r in rule["resources"]}
    assert {r for _, r in granted} == set(KSM_RESOURCES.split(","))
    assert granted == {
        ("", "pods"),
        ("", "persistentvolumeclaims"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("batch", "cronjobs"),
        ("batch", "jobs"),
    }
    bindings = _named(program.k8s("RoleBinding"), KSM)
    assert {b.inputs["metadata"]["namespace"] for b in bindings} == PLATFORM_NAMESPACES
    for binding in bindings:
        assert binding.inputs["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": KSM}
        assert binding.inputs["subjects"] == [{"kind": "ServiceAccount", "name": KSM, "namespace": MONITORING}]
    service = obj(program, "Service", KSM).inputs["spec"]
    assert [(p["name"], p["port"]) for p in service["ports"]] == [("http", 8080), ("telemetry", 8081)]


def prometheus_yaml(run_: ProgramRun) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(obj(run_, "ConfigMap", "prometheus-config").inputs["data"]["prometheus.yml"])
    return data


def test_scrape_jobs_come_from_declared_metrics_endpoints(program: ProgramRun) -> None:
    jobs = {j["job_name"]: j for j in prometheus_yaml(program)["scrape_configs"]}
    # api declares metricsPath; web does not; the data tier's exporters and the monitoring servers
    # declare their own.
    assert set(jobs) == {
        "api",
        "postgres-exporter",
        "redis-exporter",
        "prometheus",
        "alertmanager",
        "grafana",
        KSM,
    }
    # kube-state-metrics reports other pods' namespace and pod: its labels win over its own target's.
    ksm = jobs[KSM]
    assert ksm["honor_labels"] is True and ksm["relabel_configs"][0]["regex"] == "kube-state-metrics;http"
    assert ksm["kubernetes_sd_configs"] == [{"role": "endpointslice", "namespaces": {"names": [MONITORING]}}]
    assert not any(j.get("honor_labels") for name, j in jobs.items() if name != KSM)
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


@pytest.mark.integration
def test_the_programs_prometheus_config_passes_promtool(program: ProgramRun, tmp_path: Path) -> None:
    config = prometheus_yaml(program)
    for name, text in obj(program, "ConfigMap", "prometheus-rules").inputs["data"].items():
        (tmp_path / name).write_text(text)
    config["rule_files"] = [str(tmp_path / "*.yaml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = run(tool("promtool"), "check", "config", "prometheus.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.integration
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
    for labels, receiver in ((["severity=critical"], "critical-alerts"), (["severity=warning"], "warning-alerts")):
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
    # From a file of the mounted Secret, not the environment (checkov CKV_K8S_35).
    env = {e["name"]: e for e in container["env"]}
    assert env == {
        "GF_SECURITY_ADMIN_PASSWORD__FILE": {
            "name": "GF_SECURITY_ADMIN_PASSWORD__FILE",
            "value": "/etc/grafana/admin/password",
        }
    }
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["admin"]["secret"] == {"secretName": "grafana-admin", "defaultMode": 0o440}
    assert {"name": "admin", "mountPath": "/etc/grafana/admin", "readOnly": True} in container["volumeMounts"]
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
    assert prom_out[("namespace:support-monitoring",)] == [3000, 8080, 9090, 9093]
    assert prom_out[("cidr:0.0.0.0/0",)] == [443, 6443]
    am_out = policies["alertmanager"]["egress"]
    assert [peers(r, "to") for r in am_out] == [["cidr:0.0.0.0/0"]] and am_out[0]["ports"] == [
        {"protocol": "TCP", "port": 443}
    ]
    assert am_out[0]["to"][0]["ipBlock"]["except"]  # private ranges excluded
    ksm = obj(program, "NetworkPolicy", KSM).inputs["spec"]
    assert ksm["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == KSM
    assert [(peers(r, "from"), [p["port"] for p in r["ports"]]) for r in ksm["ingress"]] == [
        (["pod:prometheus"], [8080])
    ]
    assert [(peers(r, "to"), [p["port"] for p in r["ports"]]) for r in ksm["egress"]] == [
        (["cidr:0.0.0.0/0"], [443, 6443])
    ]


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


@pytest.mark.parametrize(
    ("key", "image"),
    [
        ("prometheus", "docker.io/prom/prometheus:v3.5.0"),
        ("kubeStateMetrics", "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0"),
    ],
)
def test_production_refuses_monitoring_images_without_digest(key: str, image: str) -> None:
    config, secret_keys = stack_config("production", overrides={"monitoring": {"images": {key: image}}})
    result = run_program("production", config, secret_keys)
    assert result.error is not None and f"monitoring.images.{key}" in str(result.error)
    assert result.resources == []


def test_a_disabled_kube_state_metrics_needs_no_digest_in_production() -> None:
    tag_only = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0"
    result = run_with("production", {"kubeStateMetrics": {"enabled": False}, "images": {"kubeStateMetrics": tag_only}})
    assert tag_only not in json.dumps([r.inputs for r in result.resources])


_DIGEST_PINNED = r"^[a-z0-9.-]+(/[a-z0-9._-]+)+:[A-Za-z0-9_.-]+@sha256:[0-9a-f]{64}$"


def test_monitoring_images_are_pinned_by_digest_in_every_stack(program: ProgramRun) -> None:
    for kind, name in (
        ("StatefulSet", "prometheus"),
        ("StatefulSet", "alertmanager"),
        ("Deployment", "grafana"),
        ("Deployment", KSM),
    ):
        (container,) = pod(program, kind, name)["containers"]
        assert re.match(_DIGEST_PINNED, container["image"]), (name, container["image"])
    defaults = MonitoringSettings().images
    for image in (defaults.prometheus, defaults.alertmanager, defaults.grafana, defaults.kube_state_metrics):
        assert re.match(_DIGEST_PINNED, image) and "0" * 32 not in image, image


def test_production_stack_file_carries_no_placeholder_digests() -> None:
    text = (ROOT / "Pulumi.production.yaml").read_text()
    assert not re.search(r"sha256:0{32}", text) and "PLACEHOLDER" not in text.upper()
    # The digests come from the settings' defaults, reviewed in one place.
    assert raw_stack_value("production", "monitoring") is None


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
    _monitoring_pod(records, "grafana")["containers"][0]["image"] = "docker.io/grafana/grafana:12.1.1"


def _kube_state_metrics_token_without_reason(records: list[RecordedResource]) -> None:
    resource = next(r for r in records if r.name == "monitoring-kube-state-metrics" and r.kind == "Deployment")
    del resource.inputs["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("mutation", "policy_name"),
    [
        (_unprotect, "protect-stateful-resources"),
        (_grafana_token, "no-service-account-token-automount"),
        (_alertmanager_writable_root, "read-only-root-filesystem"),
        (_prometheus_no_limits, "container-resources"),
        (_grafana_tag_only, "image-tag-pinned"),
        (_kube_state_metrics_token_without_reason, "no-service-account-token-automount"),
    ],
    ids=[
        "prometheus-unprotected",
        "grafana-token",
        "alertmanager-writable-root",
        "prometheus-no-limits",
        "grafana-tag",
        "kube-state-metrics-token-without-reason",
    ],
)
def test_unsafe_monitoring_change_is_caught_in_production(mutation: Any, policy_name: str) -> None:
    records = copy.deepcopy(stack_run("production").resources)
    assert mandatory(run_pack(records, "production")) == []
    mutation(records)
    caught = {v.policy for v in mandatory(run_pack(records, "production"))}
    assert policy_name in caught, caught


# --- kube-state-metrics off, the kubelets' volume stats on, and where every rule's series come from ---


def test_kube_state_metrics_can_be_turned_off() -> None:
    result = run_with("staging", {"kubeStateMetrics": {"enabled": False}})
    assert not [r for r in result.resources if r.type.startswith("kubernetes:") and KSM in json.dumps(r.inputs)]
    assert {r.inputs["metadata"]["name"] for r in result.k8s("Role")} == {"prometheus-discovery"}
    assert KSM not in {j["job_name"] for j in prometheus_yaml(result)["scrape_configs"]}
    egress = obj(result, "NetworkPolicy", "prometheus").inputs["spec"]["egress"]
    ports = {tuple(peers(r, "to")): sorted(p["port"] for p in r["ports"]) for r in egress}
    assert ports[("namespace:support-monitoring",)] == [3000, 9090, 9093]


def test_no_cluster_role_unless_kubelet_volume_stats_is_on(program: ProgramRun) -> None:
    assert not program.k8s("ClusterRole") and not program.k8s("ClusterRoleBinding")
    assert "kubelet" not in {j["job_name"] for j in prometheus_yaml(program)["scrape_configs"]}


@pytest.mark.parametrize("stack", STACKS)
def test_kubelet_volume_stats_add_a_cluster_role_and_a_scrape_job_through_the_api_server(stack: str) -> None:
    result = kubelet_run(stack)
    (role,) = result.k8s("ClusterRole")
    assert "namespace" not in role.inputs["metadata"]
    assert role.inputs["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]},
    ]
    (binding,) = result.k8s("ClusterRoleBinding")
    name = role.inputs["metadata"]["name"]
    assert binding.inputs["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
    assert binding.inputs["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus", "namespace": MONITORING}]
    job = next(j for j in prometheus_yaml(result)["scrape_configs"] if j["job_name"] == "kubelet")
    assert job["kubernetes_sd_configs"] == [{"role": "node"}] and job["scheme"] == "https"
    assert job["tls_config"] == {"ca_file": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"}
    assert job["authorization"] == {"credentials_file": "/var/run/secrets/kubernetes.io/serviceaccount/token"}
    relabel = {r["target_label"]: r for r in job["relabel_configs"]}
    assert relabel["__address__"]["replacement"] == "kubernetes.default.svc:443"
    assert relabel["__metrics_path__"]["source_labels"] == ["__meta_kubernetes_node_name"]
    assert relabel["__metrics_path__"]["replacement"] == "/api/v1/nodes/${1}/proxy/metrics"
    assert job["metric_relabel_configs"] == [
        {"source_labels": ["__name__"], "regex": "kubelet_volume_stats_.+", "action": "keep"}
    ]
    annotation = obj(result, "StatefulSet", "prometheus").inputs["metadata"]["annotations"][API_ANNOTATION]
    assert "through the API server's node proxy" in annotation
    # The pack refuses cluster-scoped RBAC without a reason; the opt-in names its setting.
    assert role.inputs["metadata"]["annotations"][CLUSTER_SCOPE].startswith("monitoring.kubeletVolumeStats: ")
    assert binding.inputs["metadata"]["annotations"] == role.inputs["metadata"]["annotations"]
    assert mandatory(run_pack(result.resources, stack)) == []


@pytest.mark.integration
def test_the_kubelet_scrape_job_passes_promtool(tmp_path: Path) -> None:
    config = prometheus_yaml(kubelet_run("production"))
    # promtool checks that the token file exists; in the pod it is the mounted service account token.
    (tmp_path / "token").write_text("test")
    for job in config["scrape_configs"]:
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(tmp_path / "token")
    config["rule_files"] = []
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = run(tool("promtool"), "check", "config", "prometheus.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _series_sources(run_: ProgramRun, settings: MonitoringSettings | None = None) -> dict[str, set[str]]:
    """Alert -> the scrape jobs its metrics come from that this stack's Prometheus does not have."""
    jobs = {j["job_name"] for j in prometheus_yaml(run_)["scrape_configs"]} | {"prometheus"}
    missing: dict[str, set[str]] = {}
    for alert in platform_alerts(settings or MonitoringSettings(), sorted(PLATFORM_NAMESPACES)):
        for name in metric_names(alert.expr):
            sources = sources_of(name)
            assert sources, f"{alert.name}: {name} is exposed by nothing"
            if not sources & jobs:
                missing.setdefault(alert.name, set()).update(sources)
    return missing


def test_every_alert_has_series_in_bundled_mode_except_the_opt_in_kubelet(program: ProgramRun) -> None:
    # PodCrashLooping and BackupMissing: kube-state-metrics; PersistentVolumeFillingUp only with
    # monitoring.kubeletVolumeStats (README says so).
    assert _series_sources(program) == {"PersistentVolumeFillingUp": {"kubelet"}}
    assert set(OPTIONAL_SOURCES) == {
        "kube-state-metrics",
        "kubelet",
        "cadvisor",
        "node-exporter",
        "cluster-kube-state-metrics",
    }
    assert _series_sources(kubelet_run(program.stack)) == {}
    without_ksm = run_with(program.stack, {"kubeStateMetrics": {"enabled": False}})
    assert _series_sources(without_ksm) == {
        "PersistentVolumeFillingUp": {"kubelet"},
        "KubernetesPodCrashLooping": {"kube-state-metrics"},
        "BackupMissing": {"kube-state-metrics"},
    }


@functools.cache
def node_sources_run(stack: str) -> ProgramRun:
    return run_with(stack, {"cadvisor": True, "nodeExporter": {"enabled": True}})


@pytest.mark.parametrize("stack", ["dev", "production"])
def test_cadvisor_and_node_exporter_come_through_the_api_server_with_one_cluster_role(stack: str) -> None:
    result = node_sources_run(stack)
    (role,) = result.k8s("ClusterRole")
    why = role.inputs["metadata"]["annotations"][CLUSTER_SCOPE]
    assert why.startswith("monitoring.cadvisor, monitoring.nodeExporter.enabled: ")
    jobs = {j["job_name"]: j for j in prometheus_yaml(result)["scrape_configs"]}
    paths = {
        name: next(r["replacement"] for r in jobs[name]["relabel_configs"] if r["target_label"] == "__metrics_path__")
        for name in ("cadvisor", "node-exporter")
    }
    assert paths == {
        "cadvisor": "/api/v1/nodes/${1}/proxy/metrics/cadvisor",
        "node-exporter": "/api/v1/nodes/${1}:9100/proxy/metrics",
    }
    # cAdvisor reports every container of the node: only the platform's are kept.
    keep = jobs["cadvisor"]["metric_relabel_configs"]
    assert keep[-1] == {
        "source_labels": ["namespace"],
        "regex": "support-app|support-data|support-monitoring",
        "action": "keep",
    }
    assert "kubelet" not in jobs
    # Now the container and node alerts have series; only the kubelet's volume stats stay opt-in.
    settings = MonitoringSettings.model_validate({"cadvisor": True, "nodeExporter": {"enabled": True}})
    assert _series_sources(result, settings) == {"PersistentVolumeFillingUp": {"kubelet"}}
    rules = obj(result, "ConfigMap", "prometheus-rules").inputs["data"]["platform-alerts.yaml"]
    for alert in ("ContainerHighCPUUsage", "ContainerHighMemoryUsage", "HighMemoryUsage", "DiskSpaceLow"):
        assert f"alert: {alert}\n" in rules
    assert mandatory(run_pack(result.resources, stack)) == []


def test_container_and_node_alerts_need_monitoring() -> None:
    with pytest.raises(ValueError, match="mode none has no rules"):
        MonitoringSettings.model_validate({"mode": "none", "cadvisor": True})
