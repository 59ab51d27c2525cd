"""What each stack deploys, asserted on the resources the program registers under mocks."""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest

from components.labels import CHECKSUM_ANNOTATION
from tests.harness import (
    STACKS,
    TEST_SECRETS,
    ProgramRun,
    RecordedResource,
    mock_password,
    overlay,
    raw_stack_value,
    run_program,
    stack_config,
    walk_strings,
)

RECOMMENDED = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
)
EXPECTED_SCALE = {"dev": (1, None), "staging": (2, (2, 4)), "production": (3, (3, 10))}
SERVICES = ("api", "web")


@functools.cache
def stack_run(stack: str) -> ProgramRun:
    run = run_program(stack)
    assert run.error is None, run.error
    return run


def run_with(stack: str, app_patch: dict[str, Any] | None = None, **overrides: Any) -> ProgramRun:
    if app_patch is not None:
        overrides["app"] = overlay(raw_stack_value(stack, "app"), app_patch)
    config, secret_keys = stack_config(stack, overrides=overrides)
    run = run_program(stack, config, secret_keys)
    assert run.error is None, run.error
    return run


def pod_spec(deployment: RecordedResource) -> dict[str, Any]:
    spec: dict[str, Any] = deployment.get("spec.template.spec")
    return spec


def container(deployment: RecordedResource) -> dict[str, Any]:
    containers = pod_spec(deployment)["containers"]
    assert len(containers) == 1
    first: dict[str, Any] = containers[0]
    return first


# The namespaces the program creates.
PLATFORM_NAMESPACES = ("support-app", "support-data", "support-monitoring")


def kubernetes_objects(run: ProgramRun) -> list[RecordedResource]:
    return [r for r in run.resources if r.type.startswith("kubernetes:")]


@pytest.fixture(params=STACKS)
def run(request: pytest.FixtureRequest) -> ProgramRun:
    return stack_run(request.param)


# --- providers, namespaces, labels -------------------------------------------------------------


def test_every_kubernetes_and_random_resource_uses_the_explicit_provider(run: ProgramRun) -> None:
    for resource in run.resources:
        if resource.type.startswith("kubernetes:"):
            assert resource.provider is not None and "pulumi:providers:kubernetes::support-platform-kubernetes" in (
                resource.provider
            ), resource.name
        elif resource.type.startswith("random:"):
            assert resource.provider is not None and "pulumi:providers:random::support-platform-random" in (
                resource.provider
            ), resource.name
    assert len(run.of_type("pulumi:providers:kubernetes")) == 1


def test_dev_renders_to_the_project_directory_and_clusters_use_their_context(run: ProgramRun) -> None:
    provider = run.of_type("pulumi:providers:kubernetes")[0]
    if run.stack == "dev":
        directory = provider.inputs["renderYamlToDirectory"]
        assert directory.endswith("/rendered/dev") and directory.startswith("/")
        assert "context" not in provider.inputs
    else:
        assert provider.inputs["context"] == f"support-{run.stack}"
        assert "renderYamlToDirectory" not in provider.inputs


def test_namespace_enforces_restricted_pod_security(run: ProgramRun) -> None:
    namespace = run.by_object_name("Namespace", "support-app")
    labels = namespace.get("metadata.labels")
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert all(key in labels for key in RECOMMENDED)


CLUSTER_SCOPED = {"Namespace", "ClusterIssuer", "PriorityClass"}


def test_every_object_has_recommended_labels_and_explicit_names(run: ProgramRun) -> None:
    for resource in kubernetes_objects(run):
        meta = resource.inputs["metadata"]
        assert meta.get("name"), resource.name
        assert all(key in meta["labels"] for key in RECOMMENDED), resource.name
        assert meta["labels"]["app.kubernetes.io/part-of"] == "support-platform"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "pulumi"
        if resource.kind not in CLUSTER_SCOPED:
            assert meta["namespace"] in PLATFORM_NAMESPACES, resource.name


def test_objects_in_the_namespace_are_created_after_it(run: ProgramRun) -> None:
    # A cluster rejects objects in a namespace that does not exist yet.
    namespaces = {n: run.by_object_name("Namespace", n).urn for n in PLATFORM_NAMESPACES}
    for resource in kubernetes_objects(run):
        if resource.kind not in CLUSTER_SCOPED:
            assert namespaces[resource.inputs["metadata"]["namespace"]] in resource.depends_on, resource.name


def test_resources_are_children_of_typed_components(run: ProgramRun) -> None:
    components = {r.type for r in run.resources if not r.custom}
    assert {
        "support:platform:Platform",
        "support:platform:Namespace",
        "support:secrets:Credentials",
        "support:app:AppTier",
        "support:app:Service",
    } <= components
    for resource in run.resources:
        if resource.custom and not resource.type.startswith("pulumi:providers:"):
            assert resource.parent is not None and "support:" in resource.parent, resource.name


# --- the hardened workload ---------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_is_hardened(run: ProgramRun, service: str) -> None:
    deployment = run.one("kubernetes:apps/v1:Deployment", f"{service}-deployment")
    pod = pod_spec(deployment)
    main = container(deployment)

    assert deployment.get("spec.strategy") == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == service
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}

    security = main["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] >= 10000
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}

    # Every writable path is an emptyDir, since the root filesystem is read-only; web also reads the
    # program's nginx.conf, a file of a ConfigMap, read-only.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert "/tmp" in mounts
    for path, mount in mounts.items():
        if service == "web" and path == "/etc/nginx/nginx.conf":
            assert mount == {"name": "files", "mountPath": path, "readOnly": True, "subPath": "nginx.conf"}
            assert volumes["files"] == {"name": "files", "configMap": {"name": "web-files"}}
            continue
        assert volumes[mount["name"]] == {"name": mount["name"], "emptyDir": {}}, path

    resources = main["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}


@pytest.mark.parametrize("service", SERVICES)
def test_probes_are_distinct_and_liveness_checks_no_dependencies(run: ProgramRun, service: str) -> None:
    main = container(run.one("kubernetes:apps/v1:Deployment", f"{service}-deployment"))
    startup, readiness, liveness = main["startupProbe"], main["readinessProbe"], main["livenessProbe"]
    assert liveness != readiness
    assert liveness.get("httpGet") != readiness.get("httpGet") or "tcpSocket" in liveness
    if service == "api":
        assert readiness["httpGet"] == {"path": "/health/readiness", "port": "http"}
        assert liveness["httpGet"] == {"path": "/health/liveness", "port": "http"}
        assert startup["httpGet"]["path"] == "/health/liveness"
        # A slow start is the startup probe's business, so liveness can stay strict.
        assert startup["failureThreshold"] * startup["periodSeconds"] >= 60
    else:
        assert readiness["httpGet"] == {"path": "/health", "port": "http"}
        assert liveness["tcpSocket"] == {"port": "http"}


@pytest.mark.parametrize("service", SERVICES)
def test_graceful_shutdown_outlasts_the_longest_stream(run: ProgramRun, service: str) -> None:
    deployment = run.one("kubernetes:apps/v1:Deployment", f"{service}-deployment")
    pre_stop = container(deployment)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop > 0
    max_stream = 120
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] > pre_stop + max_stream


@pytest.mark.parametrize("service", SERVICES)
def test_replicas_autoscaling_disruption_budget_and_spreading(run: ProgramRun, service: str) -> None:
    replicas, scale = EXPECTED_SCALE[run.stack]
    deployment = run.one("kubernetes:apps/v1:Deployment", f"{service}-deployment")
    spec = deployment.inputs["spec"]
    hpas = [r for r in run.k8s("HorizontalPodAutoscaler") if r.inputs["metadata"]["name"] == service]
    pdbs = [r for r in run.k8s("PodDisruptionBudget") if r.inputs["metadata"]["name"] == service]
    spread = pod_spec(deployment).get("topologySpreadConstraints")
    if scale is None:
        assert spec["replicas"] == replicas
        assert hpas == [] and pdbs == [] and spread is None
        return
    # The HPA owns spec.replicas.
    assert "replicas" not in spec
    (hpa,) = hpas
    assert (hpa.get("spec.minReplicas"), hpa.get("spec.maxReplicas")) == scale
    assert hpa.get("spec.scaleTargetRef") == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa.get("spec.metrics")}
    assert targets == {"cpu": 70, "memory": 80}
    behavior = hpa.get("spec.behavior")
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleDown"]["policies"] == [{"type": "Percent", "value": 10, "periodSeconds": 60}]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 60
    assert behavior["scaleUp"]["policies"] == [{"type": "Percent", "value": 50, "periodSeconds": 60}]

    (pdb,) = pdbs
    assert pdb.get("spec.maxUnavailable") == 1
    assert "minAvailable" not in pdb.inputs["spec"]
    assert pdb.get("spec.selector.matchLabels") == spec["selector"]["matchLabels"]
    assert spread is not None
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert all(c["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"] for c in spread)


@pytest.mark.parametrize("service", SERVICES)
def test_selectors_use_only_immutable_labels_and_match_the_service(run: ProgramRun, service: str) -> None:
    deployment = run.one("kubernetes:apps/v1:Deployment", f"{service}-deployment")
    selector = deployment.get("spec.selector.matchLabels")
    assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
    template_labels = deployment.get("spec.template.metadata.labels")
    assert selector.items() <= template_labels.items()
    svc = run.one("kubernetes:core/v1:Service", f"{service}-service")
    assert svc.get("spec.type") == "ClusterIP"
    assert svc.get("spec.selector") == selector
    container_ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    assert {p["targetPort"]: p["port"] for p in svc.get("spec.ports")} == container_ports


def test_a_stack_may_drop_the_cpu_limit_but_never_the_memory_limit() -> None:
    run = run_with("dev", {"services": {"api": {"resources": {"limits": {"cpu": None}}}}})
    resources = container(run.one("kubernetes:apps/v1:Deployment", "api-deployment"))["resources"]
    assert resources["limits"] == {"memory": "512Mi"}
    assert set(resources["requests"]) == {"cpu", "memory"}


def test_service_account_has_token_automount_off(run: ProgramRun) -> None:
    for service in SERVICES:
        account = run.one("kubernetes:core/v1:ServiceAccount", f"{service}-serviceaccount")
        assert account.inputs["automountServiceAccountToken"] is False
        assert account.get("metadata.name") == service


# --- configuration, secrets and the checksum ---------------------------------------------------


def test_api_environment_contract(run: ProgramRun) -> None:
    deployment = run.one("kubernetes:apps/v1:Deployment", "api-deployment")
    main = container(deployment)
    assert main["envFrom"] == [{"configMapRef": {"name": "api-env"}}]
    data = run.by_object_name("ConfigMap", "api-env").inputs["data"]
    assert data["PROMETHEUS_ENABLED"] == "true"
    assert data["API_V1_STR"] == "/api/v1"
    assert data["LOG_FORMAT"] == "json"
    assert data["LOG_LEVEL"] == ("DEBUG" if run.stack == "dev" else "INFO")
    assert {"DB_POOL_SIZE", "DB_MAX_OVERFLOW", "LLM_MODEL", "LLM_FALLBACK_MODEL", "RATE_LIMIT_PER_MINUTE"} <= set(data)
    assert data["CHROMA_URL"] == "http://chroma.support-data.svc.cluster.local:8000"
    assert data["BACKEND_CORS_ORIGINS"].startswith('["http')

    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in main["env"]}
    # CHROMA_TOKEN only reaches the api for an external Chroma: the in-cluster one has no auth.
    assert set(refs) == {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "LLM_API_KEY"}
    assert all("value" not in e for e in main["env"])
    secret = run.by_object_name("Secret", "api-secrets")
    for env_name, ref in refs.items():
        assert ref["name"] == "api-secrets" and ref["key"] == env_name
        if env_name == "LLM_API_KEY" and run.stack == "dev":
            # Optional in dev: the key is absent and the pod starts without it.
            assert ref["optional"] is True and env_name not in secret.inputs["stringData"]
        else:
            assert ref["optional"] is False and env_name in secret.inputs["stringData"]


def test_web_reaches_the_api_by_its_service_name(run: ProgramRun) -> None:
    data = run.by_object_name("ConfigMap", "web-env").inputs["data"]
    assert data["API_URL"] == "http://api.support-app.svc.cluster.local:8000"
    assert not run.by_object_name("ConfigMap", "web-env").secret_paths
    assert [r for r in run.k8s("Secret") if r.get("metadata.name") == "web-secrets"] == []


def test_database_and_redis_urls_are_built_from_endpoints_and_generated_passwords(run: ProgramRun) -> None:
    data = run.by_object_name("Secret", "api-secrets").inputs["stringData"]
    postgres = mock_password("credentials-postgres")
    redis = mock_password("credentials-redis")
    # Production reaches PostgreSQL through PgBouncer (data.postgres.pooler, on there by default).
    host = "pgbouncer.support-data.svc.cluster.local:6432" if run.stack == "production" else None
    host = host or "postgres.support-data.svc.cluster.local:5432"
    assert data["DATABASE_URL"] == f"postgresql://support:{postgres}@{host}/support"
    assert data["REDIS_URL"] == f"redis://:{redis}@redis.support-data.svc.cluster.local:6379/0"
    # In-cluster Chroma has no auth: no token is generated or handed out.
    assert "CHROMA_TOKEN" not in data
    assert data["SECRET_KEY"] == mock_password("credentials-secret-key")


def test_secret_data_is_marked_secret(run: ProgramRun) -> None:
    secrets = run.k8s("Secret")
    assert secrets
    for secret in secrets:
        assert secret.secret_paths == {"stringData"}, secret.name


def test_no_secret_value_appears_outside_secret_marked_inputs_or_outputs(run: ProgramRun) -> None:
    passwords = run.of_type("random:index/randomPassword:RandomPassword")
    assert {p.name for p in passwords} == {
        "credentials-postgres",
        "credentials-redis",
        "credentials-grafana-admin",
        "credentials-secret-key",
    }
    known = {mock_password(p.name) for p in passwords} | set(TEST_SECRETS.values())
    for resource in run.resources:
        for path, value in walk_strings(resource.inputs):
            if any(path == p or path.startswith(p + ".") for p in resource.secret_paths):
                continue
            leaked = [s for s in known if s in value]
            assert not leaked, f"{resource.type} {resource.name} {path} carries a secret in plaintext"
    for path, value in walk_strings(run.outputs):
        assert not any(s in value for s in known), f"stack output {path} carries a secret"
        assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", value), path
    assert run.secret_outputs == set()


def test_generated_passwords_rotate_with_the_keeper() -> None:
    before = stack_run("dev")
    after = run_with("dev", secrets={"rotation": 7})
    for password in after.of_type("random:index/randomPassword:RandomPassword"):
        assert password.inputs["keepers"] == {"rotation": "7"}
        assert password.inputs["length"] >= 24 and password.inputs["special"] is False
    for password in before.of_type("random:index/randomPassword:RandomPassword"):
        assert password.inputs["keepers"] == {"rotation": "0"}


def checksum(run: ProgramRun, service: str) -> str:
    annotations = run.one("kubernetes:apps/v1:Deployment", f"{service}-deployment").get(
        "spec.template.metadata.annotations"
    )
    value: str = annotations[CHECKSUM_ANNOTATION]
    assert re.fullmatch(r"[0-9a-f]{64}", value)
    return value


def test_a_config_change_rolls_only_the_pods_that_read_it() -> None:
    base = stack_run("dev")
    changed = run_with("dev", {"services": {"api": {"env": {"LOG_LEVEL": "WARNING"}}}})
    assert checksum(changed, "api") != checksum(base, "api")
    assert checksum(changed, "web") == checksum(base, "web")


def test_a_secret_change_rolls_the_pods() -> None:
    base = stack_run("staging")
    config, secret_keys = stack_config("staging", secrets={"llmApiKey": "sk-test-rotated-key-000000000000"})
    rotated = run_program("staging", config, secret_keys)
    assert rotated.error is None
    assert checksum(rotated, "api") != checksum(base, "api")
    # The checksum itself is published plainly, or every pod template diff would be hidden.
    deployment = rotated.one("kubernetes:apps/v1:Deployment", "api-deployment")
    assert not deployment.secret_paths


# --- network policies --------------------------------------------------------------------------


def policy(run: ProgramRun, name: str, namespace: str = "support-app") -> dict[str, Any]:
    found = [
        r
        for r in run.k8s("NetworkPolicy")
        if r.inputs["metadata"]["name"] == name and r.inputs["metadata"]["namespace"] == namespace
    ]
    assert len(found) == 1, f"expected one NetworkPolicy {namespace}/{name}"
    spec: dict[str, Any] = found[0].inputs["spec"]
    return spec


@pytest.mark.parametrize("namespace", PLATFORM_NAMESPACES)
def test_namespace_denies_all_traffic_by_default_and_allows_dns(run: ProgramRun, namespace: str) -> None:
    assert policy(run, "default-deny", namespace) == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = policy(run, "allow-dns", namespace)
    assert dns["podSelector"] == {} and dns["policyTypes"] == ["Egress"]
    (rule,) = dns["egress"]
    assert rule["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert rule["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert sorted((p["protocol"], p["port"]) for p in rule["ports"]) == [("TCP", 53), ("UDP", 53)]


def peers(rules: list[dict[str, Any]], key: str) -> list[tuple[str, Any, list[Any]]]:
    found = []
    for rule in rules:
        # The engine sends numbers as floats: 8000.0 is port 8000.
        ports = sorted(str(int(p["port"])) if isinstance(p["port"], float) else p["port"] for p in rule["ports"])
        for peer in rule[key]:
            if "podSelector" in peer and "namespaceSelector" in peer:
                name = peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                found.append((f"{name} in namespace", namespace, ports))
            elif "podSelector" in peer:
                found.append(("pod", peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"], ports))
            elif "namespaceSelector" in peer:
                found.append(
                    ("namespace", peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], ports)
                )
            else:
                found.append(("cidr", peer["ipBlock"]["cidr"], ports))
    return sorted(found)


def test_api_policy_allows_exactly_the_declared_connections(run: ProgramRun) -> None:
    api = policy(run, "api")
    assert api["policyTypes"] == ["Ingress", "Egress"]
    assert api["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "api"
    assert peers(api["ingress"], "from") == [
        ("namespace", "envoy-gateway-system", ["http"]),
        ("pod", "web", ["http"]),
        ("prometheus in namespace", "support-monitoring", ["http"]),
    ]
    # Each store's own pods in the data namespace, on its port: not the whole namespace.
    database = ("pgbouncer", ["6432"]) if run.stack == "production" else ("postgres", ["5432"])
    assert sorted(peers(api["egress"], "to")) == sorted(
        [
            ("chroma in namespace", "support-data", ["8000"]),
            ("cidr", "0.0.0.0/0", ["443"]),
            (f"{database[0]} in namespace", "support-data", database[1]),
            ("redis in namespace", "support-data", ["6379"]),
        ]
    )
    llm = next(r for r in api["egress"] if "ipBlock" in r["to"][0])
    # The LLM egress reaches public addresses only, never the cluster's private ranges.
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"} <= set(
        llm["to"][0]["ipBlock"]["except"]
    )


def test_web_policy_allows_the_edge_in_and_only_the_api_out(run: ProgramRun) -> None:
    web = policy(run, "web")
    assert peers(web["ingress"], "from") == [("namespace", "envoy-gateway-system", ["http"])]
    assert peers(web["egress"], "to") == [("pod", "api", ["8000"])]


def test_enabling_a_worker_derives_its_connections() -> None:
    run = run_with("dev", {"services": {"agent": {"enabled": True, "image": "ghcr.io/support-platform/api:1.4.0"}}})
    agent = policy(run, "agent")
    assert peers(agent["egress"], "to") == [
        ("chroma in namespace", "support-data", ["8000"]),
        ("cidr", "0.0.0.0/0", ["443"]),
        ("redis in namespace", "support-data", ["6379"]),
    ]
    # Not exposed: only Prometheus may reach it.
    assert peers(agent["ingress"], "from") == [("prometheus in namespace", "support-monitoring", ["http"])]
    deployment = run.one("kubernetes:apps/v1:Deployment", "agent-deployment")
    assert container(deployment)["command"] == ["python", "-m", "app.worker"]
    assert {e["name"] for e in container(deployment)["env"]} == {"REDIS_URL", "LLM_API_KEY"}


def test_external_data_service_is_reached_by_cidr() -> None:
    config, secret_keys = stack_config(
        "dev",
        overrides={
            "data": {
                "postgres": {
                    "mode": "external",
                    "external": {"host": "db.internal.example.com", "port": 5433, "cidr": "10.20.0.0/16"},
                }
            }
        },
        secrets={"postgresPassword": "pg-managed-test-0f1e2d3c4b5a6978"},
    )
    run = run_program("dev", config, secret_keys)
    assert run.error is None, run.error
    api = policy(run, "api")
    assert ("cidr", "10.20.0.0/16", ["5433"]) in peers(api["egress"], "to")
    url = run.by_object_name("Secret", "api-secrets").inputs["stringData"]["DATABASE_URL"]
    assert url == "postgresql://support:pg-managed-test-0f1e2d3c4b5a6978@db.internal.example.com:5433/support" + (
        "?sslmode=verify-full"
    )
    # Nothing in-cluster for a managed store.
    assert not [r for r in run.k8s("StatefulSet") if r.get("metadata.name") == "postgres"]


# --- images ------------------------------------------------------------------------------------


def test_production_runs_images_by_digest(run: ProgramRun) -> None:
    for service in SERVICES:
        image = container(run.one("kubernetes:apps/v1:Deployment", f"{service}-deployment"))["image"]
        if run.stack == "production":
            assert re.search(r"@sha256:[0-9a-f]{64}$", image), image
        else:
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")


@pytest.mark.usefixtures("docker_daemon")
def test_a_build_context_is_built_pushed_and_deployed_by_digest() -> None:
    build = {
        "context": "tests/fixtures/api-image",
        "repository": "registry.example.com/support/api",
        "tag": "1.5.0-rc1",
        "registryUsername": "ci-bot",
    }
    app = overlay(raw_stack_value("dev", "app"), {"services": {"api": {"build": build}}})
    del app["services"]["api"]["image"]
    config, secret_keys = stack_config(
        "dev", overrides={"app": app}, secrets={"registryPassword": "regpass-test-0f1e2d3c4b5a6978"}
    )
    run = run_program("dev", config, secret_keys)
    assert run.error is None, run.error
    image = run.one("docker:index/image:Image", "api-image")
    assert image.inputs["imageName"] == "registry.example.com/support/api:1.5.0-rc1"
    assert image.inputs["build"]["context"] == "tests/fixtures/api-image"
    assert image.inputs["registry"]["username"] == "ci-bot"
    assert "registry.password" in image.secret_paths
    assert image.provider is not None and "pulumi:providers:docker::support-platform-docker" in image.provider
    deployed = container(run.one("kubernetes:apps/v1:Deployment", "api-deployment"))["image"]
    assert re.fullmatch(r"registry\.example\.com/support/api@sha256:[0-9a-f]{64}", deployed)
    labels = run.one("kubernetes:apps/v1:Deployment", "api-deployment").get("metadata.labels")
    assert labels["app.kubernetes.io/version"] == "1.5.0-rc1"


def test_a_build_with_a_registry_user_needs_the_registry_password() -> None:
    build = {
        "context": "tests/fixtures/api-image",
        "repository": "registry.example.com/support/api",
        "tag": "1.5.0",
        "registryUsername": "ci",
    }
    app = overlay(raw_stack_value("dev", "app"), {"services": {"api": {"build": build}}})
    del app["services"]["api"]["image"]
    config, secret_keys = stack_config("dev", overrides={"app": app})
    run = run_program("dev", config, secret_keys)
    assert "support-platform:app.services.api.build.registryUsername: needs the registry password" in str(run.error)
    assert run.resources == []


# --- outputs -----------------------------------------------------------------------------------


def test_outputs_name_namespaces_hosts_and_the_render_directory(run: ProgramRun) -> None:
    assert run.outputs["namespaces"] == {"app": "support-app"}
    assert run.outputs["serviceHosts"] == {
        "api": "api.support-app.svc.cluster.local",
        "web": "web.support-app.svc.cluster.local",
    }
    assert run.outputs["environment"] == run.stack
    if run.stack == "dev":
        assert run.outputs["renderDirectory"] == "rendered/dev"
    else:
        assert "renderDirectory" not in run.outputs
