"""The data tier under mocks, for every stack: the namespace and the stores, how they are locked down
and protected, how the app reaches them, migrations and backups, and what monitoring scrapes."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.app.migration import release_hash
from components.config import DataSettings, data_shape
from components.data.backups import backup_label
from components.data.postgres import ROLE_SYNC_HOOK
from components.labels import CHECKSUM_ANNOTATION, DATA_NAMESPACE_LABEL
from components.runtime_config import READ_STACK_OUTPUTS
from tests import harness
from tests.harness import (
    ROOT,
    STACKS,
    ProgramRun,
    RecordedResource,
    execute_program,
    mock_password,
    overlay,
    raw_stack_value,
    stack_config,
    walk_strings,
)

DATA = "support-data"
APP = "support-app"
MONITORING = "support-monitoring"
STORES = ("postgres", "redis", "chroma")
DEFAULTS = DataSettings()
PG_PASSWORD = mock_password("credentials-postgres")
REDIS_PASSWORD = mock_password("credentials-redis")
BACKUP_SCRIPT = Path(ROOT, "components", "data", "files", "pg-backup.sh")
MIGRATION = ["alembic", "upgrade", "head"]
# Production puts PgBouncer in front of PostgreSQL (data.postgres.pooler.enabled defaults to on there).
POOLED = {"production"}


def database(run: ProgramRun) -> tuple[str, str]:
    """(the pods the app reaches PostgreSQL through, their port)."""
    return ("pgbouncer", "6432") if run.stack in POOLED else ("postgres", "5432")


# --- running the program -----------------------------------------------------------------------


class DataMocks(harness.RecordingMocks):
    """The harness' mocks, answering `pulumi:pulumi:readStackOutputs` the way the engine does: the
    outputs of the stack's last update, with `previous` as its dataShape (no outputs before the first
    update); with `failure` the engine refuses the call instead. Every call is kept in `calls`.

    Unlike the harness' own mocks, these can also refuse the call and record every call made."""

    def __init__(self, previous: Mapping[str, Any] | None = None, failure: str | None = None) -> None:
        super().__init__()
        self.previous = previous
        self.failure = failure
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        self.calls.append((args.token, dict(args.args)))
        if args.token != READ_STACK_OUTPUTS:
            return {}
        if self.failure is not None:
            return {}, [("name", self.failure)]
        outputs = {} if self.previous is None else {"dataShape": dict(self.previous)}
        return {"name": args.args["name"], "outputs": outputs, "secretOutputNames": []}


def run_data(
    stack: str,
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
    mocks: DataMocks | None = None,
) -> tuple[ProgramRun, DataMocks]:
    """The program with DataMocks in place of the harness' mocks (uncached: the calls are the point)."""
    used = mocks if mocks is not None else DataMocks()
    return execute_program(stack, config, secret_keys, mocks=used), used


@functools.cache
def stack_run(stack: str) -> ProgramRun:
    result, _ = run_data(stack)
    assert result.error is None, result.error
    return result


def app_with(stack: str, patch: dict[str, Any]) -> dict[str, Any]:
    return overlay(raw_stack_value(stack, "app"), patch)


EXTERNAL_PG = {"host": "db.internal.example.com", "port": 5433, "cidr": "10.20.0.0/16"}
EXTERNAL_REDIS = {"host": "cache.internal.example.com", "port": 6380, "cidr": "10.21.0.0/16"}
EXTERNAL_CHROMA = {"host": "vectors.internal.example.com", "port": 443, "cidr": "10.22.0.0/16"}
EXTERNAL_SECRETS = {
    "postgresPassword": "pgpass-test-0f1e2d3c4b5a6978",
    "redisPassword": "redispass-test-0f1e2d3c4b5a6978",
    "chromaToken": "chromatoken-test-0f1e2d3c4b5a6978",
}
MCP = {"enabled": True, "image": "ghcr.io/support-platform/mcp:1.0.0"}
AGENT = {"enabled": True, "image": "ghcr.io/support-platform/api:1.4.0"}

# name -> (stack, config overrides, secret config)
SCENARIOS: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "workers": ("dev", {"app": app_with("dev", {"services": {"mcp": MCP, "agent": AGENT}})}, {}),
    "external-postgres": (
        "dev",
        {"data": {"postgres": {"mode": "external", "external": EXTERNAL_PG}}},
        {"postgresPassword": EXTERNAL_SECRETS["postgresPassword"]},
    ),
    "external-postgres-without-tls": (
        "dev",
        {"data": {"postgres": {"mode": "external", "external": {**EXTERNAL_PG, "tls": False}}}},
        {"postgresPassword": EXTERNAL_SECRETS["postgresPassword"]},
    ),
    "all-external": (
        "staging",
        {
            "data": {
                "postgres": {"mode": "external", "external": EXTERNAL_PG},
                "redis": {"mode": "external", "external": EXTERNAL_REDIS},
                "chroma": {"mode": "external", "external": EXTERNAL_CHROMA},
            }
        },
        EXTERNAL_SECRETS,
    ),
    "staging-protected": ("staging", {"data": {"protect": True}}, {}),
    "production-unprotected": ("production", {"data": {"protect": False}}, {}),
    "migrations-off": ("dev", {"data": {"postgres": {"migrations": {"enabled": False}}}}, {}),
    "staging-backup-first": ("staging", {"data": {"postgres": {"migrations": {"backupFirst": True}}}}, {}),
    "new-api-image": (
        "dev",
        {"app": app_with("dev", {"services": {"api": {"image": "ghcr.io/support-platform/api:1.5.0"}}})},
        {},
    ),
    "tuned": (
        "dev",
        {
            "data": {
                "postgres": {
                    "storage": {"size": "50Gi", "storageClass": "fast-ssd"},
                    "parameters": {"work_mem": "8MB"},
                    "backup": {"schedule": "0 1 * * *", "retentionDays": 14, "storage": {"size": "100Gi"}},
                },
                "redis": {"storage": {"size": "2Gi"}},
                "chroma": {"storage": {"size": "30Gi"}, "startupSeconds": 1200},
            }
        },
        {},
    ),
    "no-exporters": (
        "dev",
        {"data": {"postgres": {"exporter": {"enabled": False}}, "redis": {"exporter": {"enabled": False}}}},
        {},
    ),
}


@functools.cache
def scenario(name: str) -> ProgramRun:
    stack, overrides, secrets = SCENARIOS[name]
    config, secret_keys = stack_config(stack, overrides=overrides, secrets=secrets)
    result, _ = run_data(stack, config, secret_keys)
    assert result.error is None, result.error
    return result


@pytest.fixture(params=STACKS)
def run(request: pytest.FixtureRequest) -> ProgramRun:
    return stack_run(request.param)


# --- lookups -----------------------------------------------------------------------------------


def find(run_: ProgramRun, kind: str, name: str, namespace: str = DATA) -> list[RecordedResource]:
    return [
        r
        for r in run_.k8s(kind)
        if r.inputs["metadata"]["name"] == name and r.inputs["metadata"].get("namespace") == namespace
    ]


def obj(run_: ProgramRun, kind: str, name: str, namespace: str = DATA) -> RecordedResource:
    found = find(run_, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind} {namespace}/{name}, found {len(found)}"
    return found[0]


def pod_of(resource: RecordedResource) -> dict[str, Any]:
    spec = resource.inputs["spec"]
    if resource.kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def containers(resource: RecordedResource) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod_of(resource)["containers"]}


def env_of(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def in_namespace(run_: ProgramRun, namespace: str) -> list[RecordedResource]:
    return [
        r
        for r in run_.resources
        if r.type.startswith("kubernetes:") and r.inputs.get("metadata", {}).get("namespace") == namespace
    ]


def number(value: Any) -> Any:
    # The engine sends numbers as floats: 5432.0 is port 5432.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def peers(rules: list[dict[str, Any]], key: str) -> list[tuple[str, str, str]]:
    """(namespace or 'same' or 'cidr', pod name or CIDR, port) of every peer of every rule."""
    found = []
    for rule in rules:
        for port in rule["ports"]:
            for peer in rule[key]:
                if "ipBlock" in peer:
                    found.append(("cidr", peer["ipBlock"]["cidr"], str(number(port["port"]))))
                    continue
                namespace = peer.get("namespaceSelector", {}).get("matchLabels", {})
                pod = peer.get("podSelector", {}).get("matchLabels", {})
                found.append(
                    (
                        namespace.get("kubernetes.io/metadata.name", "same"),
                        pod.get("app.kubernetes.io/name", "*"),
                        str(number(port["port"])),
                    )
                )
    return sorted(found)


def store_size(settings: DataSettings, store: str) -> str:
    size: str = settings.stores()[store].storage.size
    return size


# --- namespace and priority --------------------------------------------------------------------


def test_data_namespace_is_restricted_marked_as_data_and_denies_by_default(run: ProgramRun) -> None:
    namespace = run.by_object_name("Namespace", DATA)
    labels = namespace.get("metadata.labels")
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert labels[DATA_NAMESPACE_LABEL] == "true"
    assert DATA_NAMESPACE_LABEL not in run.by_object_name("Namespace", APP).get("metadata.labels")

    assert obj(run, "NetworkPolicy", "default-deny").inputs["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
    }
    dns = obj(run, "NetworkPolicy", "allow-dns").inputs["spec"]
    assert dns["podSelector"] == {} and dns["policyTypes"] == ["Egress"]
    assert peers(dns["egress"], "to") == [("kube-system", "*", "53"), ("kube-system", "*", "53")]
    assert dns["egress"][0]["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    for resource in in_namespace(run, DATA):
        assert namespace.urn in resource.depends_on, resource.name


def test_priority_class_is_above_zero_and_every_store_and_backup_pod_uses_it(run: ProgramRun) -> None:
    (priority,) = run.k8s("PriorityClass")
    assert priority.get("metadata.name") == "support-data-stores"
    assert priority.inputs["value"] == DEFAULTS.priority > 0
    assert priority.inputs["globalDefault"] is False
    pods = [*run.k8s("StatefulSet"), *run.k8s("CronJob"), *run.k8s("Job")]
    data_pods = [r for r in pods if r.get("metadata.namespace") == DATA]
    # Three stores, the backup CronJob, and in production the backup before a migration.
    assert len(data_pods) == (5 if run.stack == "production" else 4)
    for resource in data_pods:
        assert pod_of(resource)["priorityClassName"] == "support-data-stores", resource.name
    for deployment in run.k8s("Deployment"):
        if deployment.get("metadata.namespace") == DATA:
            # PgBouncer is as vital as the database behind it.
            assert deployment.get("metadata.name") == "pgbouncer" and run.stack in POOLED
            assert pod_of(deployment)["priorityClassName"] == "support-data-stores"
            continue
        # App pods keep the default priority (0): they can never preempt a store.
        assert "priorityClassName" not in pod_of(deployment), deployment.name


# --- each store's kit --------------------------------------------------------------------------


@pytest.mark.parametrize("store", STORES)
def test_store_is_a_statefulset_with_named_services_account_and_policy(run: ProgramRun, store: str) -> None:
    sts = obj(run, "StatefulSet", store)
    spec = sts.inputs["spec"]
    selector = spec["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": store, "app.kubernetes.io/instance": f"support-platform-{run.stack}"}
    assert spec["replicas"] == 1 and spec["serviceName"] == f"{store}-headless"
    assert pod_of(sts)["serviceAccountName"] == store

    client = obj(run, "Service", store).inputs["spec"]
    headless = obj(run, "Service", f"{store}-headless").inputs["spec"]
    assert client["type"] == "ClusterIP" and client["selector"] == selector
    assert headless["clusterIP"] == "None" and headless["selector"] == selector
    assert headless["publishNotReadyAddresses"] is True
    store_port = {"postgres": 5432, "redis": 6379, "chroma": 8000}[store]
    assert any(p["port"] == store_port for p in client["ports"])
    assert client["ports"] == headless["ports"]
    main = containers(sts)[store]
    named = {p["name"] for c in pod_of(sts)["containers"] for p in c["ports"]}
    assert {p["targetPort"] for p in client["ports"]} <= named
    assert store_port in {p["containerPort"] for p in main["ports"]}

    assert obj(run, "ServiceAccount", store).inputs["automountServiceAccountToken"] is False
    policy = obj(run, "NetworkPolicy", store).inputs["spec"]
    assert policy["podSelector"] == {"matchLabels": selector}
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    # A store calls nobody; DNS comes from the namespace's own policy.
    assert policy["egress"] == []


@pytest.mark.parametrize("store", STORES)
def test_claim_template_takes_its_size_from_settings(run: ProgramRun, store: str) -> None:
    (claim,) = obj(run, "StatefulSet", store).get("spec.volumeClaimTemplates")
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == store_size(DEFAULTS, store)
    assert "storageClassName" not in claim["spec"]
    mounts = {m["name"]: m for m in containers(obj(run, "StatefulSet", store))[store]["volumeMounts"]}
    assert "readOnly" not in mounts["data"]


def test_sizes_and_storage_class_follow_the_stack() -> None:
    tuned = scenario("tuned")
    claims = {s: obj(tuned, "StatefulSet", s).get("spec.volumeClaimTemplates.0.spec") for s in STORES}
    assert claims["postgres"]["resources"]["requests"]["storage"] == "50Gi"
    assert claims["postgres"]["storageClassName"] == "fast-ssd"
    assert claims["redis"]["resources"]["requests"]["storage"] == "2Gi"
    assert claims["chroma"]["resources"]["requests"]["storage"] == "30Gi"
    assert "storageClassName" not in claims["redis"]
    backups = obj(tuned, "PersistentVolumeClaim", "postgres-backups").inputs["spec"]
    assert backups["resources"]["requests"]["storage"] == "100Gi"
    assert tuned.outputs["dataShape"] == {
        "namespace": DATA,
        "stores": {
            "postgres": {
                "size": "50Gi",
                "storageClass": "fast-ssd",
                "backupSize": "100Gi",
                "backupStorageClass": None,
            },
            "redis": {"size": "2Gi", "storageClass": None},
            "chroma": {"size": "30Gi", "storageClass": None},
        },
    }


@pytest.mark.parametrize("store", STORES)
def test_store_pod_is_hardened(run: ProgramRun, store: str) -> None:
    sts = obj(run, "StatefulSet", store)
    pod = pod_of(sts)
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] >= 10000
    assert security["fsGroup"] == security["runAsUser"]
    assert security["fsGroupChangePolicy"] == "OnRootMismatch"
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] >= 10000, container["name"]
        assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
        assert ctx["privileged"] is False and ctx["capabilities"] == {"drop": ["ALL"]}
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}, container["name"]
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}, container["name"]
    settings = DEFAULTS.stores()[store].resources
    main = containers(sts)[store]
    assert main["resources"] == {
        "requests": {"cpu": settings.requests.cpu, "memory": settings.requests.memory},
        "limits": {"cpu": settings.limits.cpu, "memory": settings.limits.memory},
    }
    # Nothing but the claim, emptyDirs and read-only configuration: no host paths.
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in main["volumeMounts"]:
        if mount["name"] == "data":
            continue
        volume = volumes[mount["name"]]
        assert set(volume) & {"emptyDir", "configMap", "secret"}, mount
        if "emptyDir" not in volume:
            assert mount["readOnly"] is True, mount
    assert "/tmp" in {m["mountPath"] for m in main["volumeMounts"]}


def probes(container: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [container["startupProbe"], container["readinessProbe"], container["livenessProbe"]]


def test_postgres_probes_ask_pg_isready_for_the_user(run: ProgramRun) -> None:
    main = containers(obj(run, "StatefulSet", "postgres"))["postgres"]
    for probe in (main["startupProbe"], main["livenessProbe"]):
        command = probe["exec"]["command"]
        assert command[0] == "pg_isready" and "--username=support" in command, command
        assert "--port=5432" in command
    # Ready: the app's user logs in to the app's database with the password from the Secret.
    ready = " ".join(main["readinessProbe"]["exec"]["command"])
    assert (
        'PGPASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")" psql' in ready and "--username=support --dbname=support" in ready
    )
    assert env_of(main)["POSTGRES_PASSWORD_FILE"]["value"] == "/etc/postgresql-credentials/password"
    startup = main["startupProbe"]
    # initdb on first start, WAL replay after a crash: ten minutes before liveness applies.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_redis_probes_ping_with_the_password_from_the_secret(run: ProgramRun) -> None:
    main = containers(obj(run, "StatefulSet", "redis"))["redis"]
    for probe in probes(main):
        command = " ".join(probe["exec"]["command"])
        assert "redis-cli" in command and "ping" in command, command
        # The password never appears on a command line (REDISCLI_AUTH carries it).
        assert " -a " not in command and "--pass" not in command and REDIS_PASSWORD not in command
    assert env_of(main)["REDISCLI_AUTH"] == {
        "name": "REDISCLI_AUTH",
        "valueFrom": {"secretKeyRef": {"name": "redis-credentials", "key": "password"}},
    }


def test_chroma_probes_get_the_heartbeat(run: ProgramRun) -> None:
    main = containers(obj(run, "StatefulSet", "chroma"))["chroma"]
    # Alive: the heartbeat answers; ready: the healthcheck (503 while the server is unhealthy).
    for probe in (main["startupProbe"], main["livenessProbe"]):
        assert probe["httpGet"] == {"path": "/api/v2/heartbeat", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/api/v2/healthcheck", "port": "http"}
    startup = main["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= DEFAULTS.chroma.startup_seconds
    assert main["livenessProbe"] != main["readinessProbe"]
    longer = containers(obj(scenario("tuned"), "StatefulSet", "chroma"))["chroma"]["startupProbe"]
    assert longer["periodSeconds"] * longer["failureThreshold"] >= 1200


EXPORTERS = {
    # postgres_exporter reads the password from the mounted Secret's file; redis_exporter from env.
    "postgres": (9187, "DATA_SOURCE_PASS_FILE", {"value": "/etc/postgresql-credentials/password"}),
    "redis": (
        9121,
        "REDIS_PASSWORD",
        {"valueFrom": {"secretKeyRef": {"name": "redis-credentials", "key": "password"}}},
    ),
}


@pytest.mark.parametrize("store", EXPORTERS)
def test_exporter_is_a_sidecar_with_credentials_from_the_secret(run: ProgramRun, store: str) -> None:
    port, variable, source = EXPORTERS[store]
    sts = obj(run, "StatefulSet", store)
    assert list(containers(sts)) == [store, "exporter"]
    exporter = containers(sts)["exporter"]
    assert exporter["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert exporter["image"] == getattr(DEFAULTS, store).exporter.image
    assert env_of(exporter)[variable] == {"name": variable, **source}
    assert all(probe["httpGet"]["port"] == "metrics" for probe in probes(exporter))
    service_ports = {p["name"]: p["port"] for p in obj(run, "Service", store).get("spec.ports")}
    assert service_ports["metrics"] == port


def test_chroma_has_no_exporter_and_no_metrics_port(run: ProgramRun) -> None:
    sts = obj(run, "StatefulSet", "chroma")
    assert list(containers(sts)) == ["chroma"]
    assert [p["name"] for p in obj(run, "Service", "chroma").get("spec.ports")] == ["http"]


def test_without_exporters_no_metrics_port_is_open() -> None:
    plain = scenario("no-exporters")
    for store in EXPORTERS:
        sts = obj(plain, "StatefulSet", store)
        assert list(containers(sts)) == [store]
        assert "metrics" not in {p["name"] for p in obj(plain, "Service", store).get("spec.ports")}
        ingress = obj(plain, "NetworkPolicy", store).get("spec.ingress")
        assert all(port["port"] != "metrics" for rule in ingress for port in rule["ports"])
    jobs = {j["job_name"] for j in prometheus_yaml(plain)["scrape_configs"]}
    assert not {"postgres-exporter", "redis-exporter"} & jobs


@pytest.mark.parametrize("store", EXPORTERS)
def test_only_the_exporter_declares_the_metrics_port(store: str) -> None:
    sts = obj(stack_run("dev"), "StatefulSet", store)
    owners = [c["name"] for c in pod_of(sts)["containers"] for p in c["ports"] if p["name"] == "metrics"]
    assert owners == ["exporter"]


# --- credentials -------------------------------------------------------------------------------


def test_no_password_literal_in_any_env(run: ProgramRun) -> None:
    secrets = {PG_PASSWORD, REDIS_PASSWORD}
    workloads = [*run.k8s("StatefulSet"), *run.k8s("Deployment"), *run.k8s("Job"), *run.k8s("CronJob")]
    for workload in [w for w in workloads if w.get("metadata.namespace") in (DATA, APP)]:
        for container in pod_of(workload)["containers"]:
            for entry in container.get("env", []):
                if entry["name"].endswith("_FILE"):  # a path to a mounted Secret's file
                    assert entry["value"].startswith("/"), (workload.name, entry)
                elif re.search(r"PASS|AUTH|TOKEN|SECRET|_URL$", entry["name"]):
                    assert "value" not in entry, (workload.name, entry)
                    assert "secretKeyRef" in entry["valueFrom"], (workload.name, entry)
                else:
                    assert not any(s in str(entry.get("value", "")) for s in secrets), (workload.name, entry)
    for resource in run.resources:
        for path, value in walk_strings(resource.inputs):
            if any(path == p or path.startswith(p + ".") for p in resource.secret_paths):
                continue
            assert not any(s in value for s in secrets), f"{resource.type} {resource.name} {path}"
    for _, value in walk_strings(run.outputs):
        assert not any(s in value for s in secrets)


@pytest.mark.parametrize(("store", "password"), [("postgres", PG_PASSWORD), ("redis", REDIS_PASSWORD)])
def test_store_secret_holds_the_generated_password_marked_secret(run: ProgramRun, store: str, password: str) -> None:
    secret = obj(run, "Secret", f"{store}-credentials")
    assert secret.secret_paths == {"stringData"}
    assert secret.inputs["stringData"]["password"] == password
    main = containers(obj(run, "StatefulSet", store))[store]
    if store == "postgres":
        # Mounted as files for the server and its exporter: in no container's environment.
        sts = obj(run, "StatefulSet", store)
        volumes = {v["name"]: v for v in sts.inputs["spec"]["template"]["spec"]["volumes"]}
        assert volumes["credentials"]["secret"] == {"secretName": "postgres-credentials", "defaultMode": 0o440}
        mount = {"name": "credentials", "mountPath": "/etc/postgresql-credentials", "readOnly": True}
        assert all(mount in c["volumeMounts"] for c in containers(sts).values())
        assert "POSTGRES_PASSWORD" not in env_of(main)


def test_redis_password_arrives_by_an_include_from_the_secret(run: ProgramRun) -> None:
    secret = obj(run, "Secret", "redis-credentials").inputs["stringData"]
    assert secret["auth.conf"] == f"requirepass {REDIS_PASSWORD}\n"
    conf = obj(run, "ConfigMap", "redis-config").inputs["data"]["redis.conf"]
    lines = [ln for ln in conf.splitlines() if ln and not ln.startswith("#")]
    assert "requirepass" not in conf
    # Last, so that nothing above can override what the Secret sets.
    assert lines[-1] == "include /etc/redis/auth/auth.conf"
    for command in ("FLUSHALL", "FLUSHDB", "CONFIG", "DEBUG"):
        assert f'rename-command {command} ""' in lines
    assert "appendonly yes" in lines
    assert f"maxmemory {256 * 1024 * 1024}" in lines and "maxmemory-policy volatile-lru" in lines
    pod = pod_of(obj(run, "StatefulSet", "redis"))
    auth = next(v for v in pod["volumes"] if v["name"] == "auth")
    assert auth["secret"] == {"secretName": "redis-credentials", "items": [{"key": "auth.conf", "path": "auth.conf"}]}
    mounts = {m["name"]: m for m in containers(obj(run, "StatefulSet", "redis"))["redis"]["volumeMounts"]}
    assert mounts["auth"]["mountPath"] == "/etc/redis/auth" and mounts["auth"]["readOnly"] is True


def test_a_postgres_configuration_change_rolls_only_postgres() -> None:
    def checksums(run_: ProgramRun) -> dict[str, str]:
        return {
            s: obj(run_, "StatefulSet", s).get("spec.template.metadata.annotations")[CHECKSUM_ANNOTATION]
            for s in STORES
        }

    base, tuned = checksums(stack_run("dev")), checksums(scenario("tuned"))
    assert base["postgres"] != tuned["postgres"]
    assert base["redis"] == tuned["redis"] and base["chroma"] == tuned["chroma"]
    assert (
        "work_mem = '8MB'" in obj(scenario("tuned"), "ConfigMap", "postgres-config").inputs["data"]["postgresql.conf"]
    )


# --- protection --------------------------------------------------------------------------------

PROTECTED = {
    ("Namespace", DATA),
    ("StatefulSet", "postgres"),
    ("StatefulSet", "redis"),
    ("StatefulSet", "chroma"),
    ("PersistentVolumeClaim", "postgres-backups"),
}


def protected_data_objects(run_: ProgramRun) -> set[tuple[str, str]]:
    data_objects = [*in_namespace(run_, DATA), run_.by_object_name("Namespace", DATA)]
    for resource in data_objects:
        # retain_on_delete goes with protect: a deliberate delete still leaves the data in the cluster.
        assert resource.retain_on_delete is resource.protect, resource.name
    return {(r.kind, r.inputs["metadata"]["name"]) for r in data_objects if r.protect}


def retention_policies(run_: ProgramRun) -> dict[str, Any]:
    return {s: obj(run_, "StatefulSet", s).inputs["spec"].get("persistentVolumeClaimRetentionPolicy") for s in STORES}


def test_data_is_protected_in_production_only(run: ProgramRun) -> None:
    policies = retention_policies(run)
    if run.stack == "production":
        assert protected_data_objects(run) == PROTECTED
        assert all(p == {"whenDeleted": "Retain", "whenScaled": "Retain"} for p in policies.values())
    else:
        assert protected_data_objects(run) == set()
        # Kubernetes' default (Retain) applies; nothing asks for claims to be deleted.
        assert all(p is None or "Delete" not in p.values() for p in policies.values())


def test_data_protect_overrides_the_environment_default() -> None:
    staging = scenario("staging-protected")
    assert protected_data_objects(staging) == PROTECTED
    assert all(p == {"whenDeleted": "Retain", "whenScaled": "Retain"} for p in retention_policies(staging).values())
    assert protected_data_objects(scenario("production-unprotected")) == set()


# --- endpoints in the app ----------------------------------------------------------------------


def test_api_gets_urls_built_from_the_endpoints_and_generated_passwords(run: ProgramRun) -> None:
    secret = run.by_object_name("Secret", "api-secrets")
    assert secret.secret_paths == {"stringData"}
    data = secret.inputs["stringData"]
    host, port = database(run)
    assert data["DATABASE_URL"] == f"postgresql://support:{PG_PASSWORD}@{host}.{DATA}.svc.cluster.local:{port}/support"
    assert data["REDIS_URL"] == f"redis://:{REDIS_PASSWORD}@redis.{DATA}.svc.cluster.local:6379/0"
    # In-cluster Chroma takes no token: neither the Secret nor the pod has one.
    assert "CHROMA_TOKEN" not in data
    main = containers(run.one("kubernetes:apps/v1:Deployment", "api-deployment"))["api"]
    assert "CHROMA_TOKEN" not in env_of(main)
    config = run.by_object_name("ConfigMap", "api-env").inputs["data"]
    assert config["CHROMA_URL"] == f"http://chroma.{DATA}.svc.cluster.local:8000"
    assert run.outputs["dataEndpoints"] == {
        "postgres": f"{host}.{DATA}.svc.cluster.local:{port}",
        "redis": f"redis.{DATA}.svc.cluster.local:6379",
        "chroma": f"chroma.{DATA}.svc.cluster.local:8000",
    }
    assert run.outputs["dataShape"] == data_shape(DEFAULTS)


def test_each_store_admits_exactly_its_declared_clients(run: ProgramRun) -> None:
    def clients(store: str) -> list[tuple[str, str, str]]:
        ingress = obj(run, "NetworkPolicy", store).get("spec.ingress")
        return [p for p in peers(ingress, "from") if p[2] != "metrics"]

    app = [(APP, "api"), (APP, "api-migrations")]
    if run.stack in POOLED:
        # PostgreSQL admits PgBouncer and its backups; PgBouncer admits what PostgreSQL would have.
        assert clients("postgres") == [(DATA, "pgbouncer", "postgres"), (DATA, "postgres-backup", "postgres")]
        assert clients("pgbouncer") == [(ns, name, "pgbouncer") for ns, name in app]
    else:
        assert clients("postgres") == [
            *((ns, name, "postgres") for ns, name in app),
            (DATA, "postgres-backup", "postgres"),
        ]
    assert clients("redis") == [(APP, "api", "redis")]
    assert clients("chroma") == [(APP, "api", "http")]


def test_enabled_workers_are_admitted_by_what_they_connect_to() -> None:
    workers = scenario("workers")

    def clients(store: str) -> list[str]:
        ingress = obj(workers, "NetworkPolicy", store).get("spec.ingress")
        return [f"{ns}/{name}" for ns, name, port in peers(ingress, "from") if port != "metrics"]

    # mcp connects to postgres only; agent to redis and chroma.
    assert clients("postgres") == [f"{APP}/api", f"{APP}/api-migrations", f"{APP}/mcp", f"{DATA}/postgres-backup"]
    assert clients("redis") == [f"{APP}/agent", f"{APP}/api"]
    assert clients("chroma") == [f"{APP}/agent", f"{APP}/api"]
    mcp = obj(workers, "NetworkPolicy", "mcp", APP).get("spec.egress")
    assert (DATA, "postgres", "5432") in peers(mcp, "to")


@pytest.mark.parametrize("store", EXPORTERS)
def test_metrics_port_is_open_to_prometheus_only(run: ProgramRun, store: str) -> None:
    ingress = obj(run, "NetworkPolicy", store).get("spec.ingress")
    metrics = [rule for rule in ingress if any(p["port"] == "metrics" for p in rule["ports"])]
    assert len(metrics) == 1
    (peer,) = metrics[0]["from"]
    # One peer with both selectors: Prometheus' pods in the monitoring namespace, nothing else there.
    assert peer == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING}},
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "prometheus",
                "app.kubernetes.io/instance": f"support-platform-{run.stack}",
            }
        },
    }
    assert [p["port"] for p in metrics[0]["ports"]] == ["metrics"]


def test_api_reaches_each_store_by_namespace_and_pod_selector(run: ProgramRun) -> None:
    egress = obj(run, "NetworkPolicy", "api", APP).get("spec.egress")
    stores = [p for p in peers(egress, "to") if p[0] == DATA]
    assert stores == [(DATA, "chroma", "8000"), (DATA, *database(run)), (DATA, "redis", "6379")]
    for rule in egress:
        for peer in rule["to"]:
            if (
                "namespaceSelector" in peer
                and peer["namespaceSelector"]["matchLabels"].get("kubernetes.io/metadata.name") == DATA
            ):
                # Never the whole namespace: the backup pods and exporters are not the api's business.
                assert "podSelector" in peer, rule


def test_backup_pods_reach_postgres_only() -> None:
    run_ = stack_run("production")
    policy = obj(run_, "NetworkPolicy", "postgres-backup").inputs["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "postgres-backup"
    assert policy["ingress"] == []
    assert peers(policy["egress"], "to") == [("same", "postgres", "5432")]


# --- external stores ---------------------------------------------------------------------------


def test_external_postgres_deploys_nothing_and_is_reached_over_tls_by_cidr() -> None:
    run_ = scenario("external-postgres")
    for kind in ("StatefulSet", "Service", "Secret", "ConfigMap", "NetworkPolicy", "ServiceAccount"):
        names = {r.inputs["metadata"]["name"] for r in in_namespace(run_, DATA) if r.kind == kind}
        assert not {n for n in names if n.startswith("postgres")}, (kind, names)
    assert not run_.k8s("CronJob") and not run_.k8s("PersistentVolumeClaim")
    # Redis and Chroma still run in-cluster.
    assert {r.inputs["metadata"]["name"] for r in run_.k8s("StatefulSet") if r.get("metadata.namespace") == DATA} == {
        "redis",
        "chroma",
    }
    password = EXTERNAL_SECRETS["postgresPassword"]
    data = run_.by_object_name("Secret", "api-secrets").inputs["stringData"]
    assert (
        data["DATABASE_URL"]
        == f"postgresql://support:{password}@db.internal.example.com:5433/support?sslmode=verify-full"
    )
    egress = obj(run_, "NetworkPolicy", "api", APP).get("spec.egress")
    assert ("cidr", "10.20.0.0/16", "5433") in peers(egress, "to")
    assert not [p for p in peers(egress, "to") if p[1] == "postgres"]
    # The migration still runs (against the managed database), with no backup of ours before it.
    migration = obj(run_, "NetworkPolicy", "api-migrations", APP).get("spec.egress")
    assert peers(migration, "to") == [("cidr", "10.20.0.0/16", "5433")]
    assert run_.outputs["dataEndpoints"]["postgres"] == "db.internal.example.com:5433"
    assert "postgres" not in run_.outputs["dataShape"]["stores"]
    jobs = {j["job_name"] for j in prometheus_yaml(run_)["scrape_configs"]}
    assert "postgres-exporter" not in jobs and "redis-exporter" in jobs
    for resource in run_.resources:
        for path, value in walk_strings(resource.inputs):
            if password in value:
                assert any(path == p or path.startswith(p + ".") for p in resource.secret_paths), resource.name


def test_external_postgres_without_tls_has_no_sslmode() -> None:
    data = scenario("external-postgres-without-tls").by_object_name("Secret", "api-secrets").inputs["stringData"]
    password = EXTERNAL_SECRETS["postgresPassword"]
    assert data["DATABASE_URL"] == f"postgresql://support:{password}@db.internal.example.com:5433/support"


def test_all_stores_external_means_no_data_namespace() -> None:
    run_ = scenario("all-external")
    assert not [r for r in run_.k8s("Namespace") if r.get("metadata.name") == DATA]
    assert in_namespace(run_, DATA) == [] and run_.k8s("PriorityClass") == []
    # The (empty) DataTier component and the migration, which runs against the managed database.
    assert {r.type for r in run_.resources if r.type.startswith("support:data:")} == {
        "support:data:DataTier",
        "support:data:Migration",
    }
    data = run_.by_object_name("Secret", "api-secrets").inputs["stringData"]
    assert data["REDIS_URL"] == (f"rediss://:{EXTERNAL_SECRETS['redisPassword']}@cache.internal.example.com:6380/0")
    assert data["CHROMA_TOKEN"] == EXTERNAL_SECRETS["chromaToken"]
    egress = peers(obj(run_, "NetworkPolicy", "api", APP).get("spec.egress"), "to")
    for cidr, port in (("10.20.0.0/16", "5433"), ("10.21.0.0/16", "6380"), ("10.22.0.0/16", "443")):
        assert ("cidr", cidr, port) in egress
    assert run_.outputs["dataShape"] == {"namespace": DATA, "stores": {}}
    # Monitoring neither scrapes nor discovers in a namespace that does not exist.
    assert not {j["job_name"] for j in prometheus_yaml(run_)["scrape_configs"]} & {
        "postgres-exporter",
        "redis-exporter",
    }
    prometheus = obj(run_, "NetworkPolicy", "prometheus", MONITORING).get("spec.egress")
    assert not [p for p in peers(prometheus, "to") if p[0] == DATA]


def test_external_chroma_with_tls_is_reached_over_https() -> None:
    config = scenario("all-external").by_object_name("ConfigMap", "api-env").inputs["data"]
    assert config["CHROMA_URL"] == "https://vectors.internal.example.com:443"


# --- migrations --------------------------------------------------------------------------------


def migration_jobs(run_: ProgramRun) -> list[RecordedResource]:
    return [r for r in run_.k8s("Job") if r.get("metadata.namespace") == APP]


def api_image(run_: ProgramRun) -> str:
    image: str = containers(run_.one("kubernetes:apps/v1:Deployment", "api-deployment"))["api"]["image"]
    return image


def test_migration_job_runs_the_api_image_with_the_api_environment(run: ProgramRun) -> None:
    (job,) = migration_jobs(run)
    image = api_image(run)
    assert job.get("metadata.name") == f"api-migrations-{release_hash(image, MIGRATION)}"
    spec = job.inputs["spec"]
    # A failed migration is not retried blindly: the update stops before the Deployment changes.
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == DEFAULTS.postgres.migrations.timeout_seconds
    pod = pod_of(job)
    (container,) = pod["containers"]
    assert container["command"] == MIGRATION
    assert container["image"] == image
    assert container["envFrom"] == [{"configMapRef": {"name": "api-env"}}, {"secretRef": {"name": "api-secrets"}}]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "api"
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    labels = job.get("spec.template.metadata.labels")
    assert labels["app.kubernetes.io/name"] == "api-migrations"

    policy = obj(run, "NetworkPolicy", "api-migrations", APP).inputs["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["ingress"] == []
    assert peers(policy["egress"], "to") == [(DATA, *database(run))]


def test_the_api_deployment_waits_for_the_migration_which_waits_for_postgres(run: ProgramRun) -> None:
    (job,) = migration_jobs(run)
    deployment = run.one("kubernetes:apps/v1:Deployment", "api-deployment")
    assert job.urn in deployment.depends_on
    urns = {r.name: r.urn for r in run.resources}
    for name in ("postgres-statefulset", "postgres-credentials", "api-env", "api-secrets"):
        assert urns[name] in job.depends_on, name
    web = run.one("kubernetes:apps/v1:Deployment", "web-deployment")
    assert job.urn not in web.depends_on


def test_production_backs_up_before_migrating(run: ProgramRun) -> None:
    backups = [r for r in run.k8s("Job") if r.get("metadata.namespace") == DATA]
    if run.stack != "production":
        assert backups == []
        return
    (backup,) = backups
    label = backup_label(api_image(run))
    assert re.fullmatch(r"pre-migration-[0-9a-f]{12}", label)
    assert backup.get("metadata.name") == f"postgres-backup-{label}"
    annotations = backup.get("metadata.annotations")
    assert annotations["support-platform.io/backup-label"] == label
    assert annotations["support-platform.io/backup-claim"] == f"{DATA}/postgres-backups"
    (container,) = pod_of(backup)["containers"]
    assert env_of(container)["BACKUP_LABEL"] == {"name": "BACKUP_LABEL", "value": label}
    assert container["command"] == ["/bin/sh", "/opt/support-platform/pg-backup.sh", "backup"]
    assert backup.inputs["spec"]["backoffLimit"] == 0
    # The backup pods are what the postgres policy admits.
    assert backup.get("spec.template.metadata.labels")["app.kubernetes.io/name"] == "postgres-backup"
    (job,) = migration_jobs(run)
    assert backup.urn in job.depends_on


def test_backup_first_can_be_asked_for_outside_production() -> None:
    run_ = scenario("staging-backup-first")
    (backup,) = [r for r in run_.k8s("Job") if r.get("metadata.namespace") == DATA]
    (job,) = migration_jobs(run_)
    assert backup.urn in job.depends_on


def test_a_new_image_is_a_new_migration() -> None:
    before, after = migration_jobs(stack_run("dev"))[0], migration_jobs(scenario("new-api-image"))[0]
    assert before.get("metadata.name") != after.get("metadata.name")
    assert pod_of(after)["containers"][0]["image"] == "ghcr.io/support-platform/api:1.5.0"


def test_migrations_can_be_turned_off() -> None:
    run_ = scenario("migrations-off")
    assert run_.k8s("Job") == []
    assert find(run_, "NetworkPolicy", "api-migrations", APP) == []
    assert not [r for r in run_.resources if r.type == "support:data:Migration"]
    ingress = obj(run_, "NetworkPolicy", "postgres").get("spec.ingress")
    assert "api-migrations" not in {name for _, name, _ in peers(ingress, "from")}


# --- backups -----------------------------------------------------------------------------------


def test_backup_cronjob_runs_the_script_with_the_password_from_the_secret(run: ProgramRun) -> None:
    cron = obj(run, "CronJob", "postgres-backup")
    spec = cron.inputs["spec"]
    assert spec["schedule"] == DEFAULTS.postgres.backup.schedule == "17 3 * * *"
    assert spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = pod_of(cron)
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "postgres-backup"
    assert pod["automountServiceAccountToken"] is False
    assert obj(run, "ServiceAccount", "postgres-backup").inputs["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["image"] == DEFAULTS.postgres.image
    assert container["command"] == ["/bin/sh", "/opt/support-platform/pg-backup.sh", "backup"]
    env = env_of(container)
    assert env["PGPASSWORD"] == {
        "name": "PGPASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "postgres-credentials", "key": "password"}},
    }
    assert env["RETENTION_DAYS"]["value"] == str(DEFAULTS.postgres.backup.retention_days)
    assert env["PGHOST"]["value"] == f"postgres.{DATA}.svc.cluster.local"
    assert env["BACKUP_DIR"]["value"] == "/backups"
    assert "BACKUP_LABEL" not in env

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts["/backups"]]["persistentVolumeClaim"] == {"claimName": "postgres-backups"}
    scripts = volumes[mounts["/opt/support-platform"]]["configMap"]
    assert scripts == {"name": "postgres-backup-script", "defaultMode": 0o555}
    script = obj(run, "ConfigMap", "postgres-backup-script").inputs["data"]
    assert script == {"pg-backup.sh": BACKUP_SCRIPT.read_text()}

    claim = obj(run, "PersistentVolumeClaim", "postgres-backups").inputs["spec"]
    assert claim["resources"]["requests"]["storage"] == DEFAULTS.postgres.backup.storage.size
    assert claim["accessModes"] == ["ReadWriteOnce"]


def test_backup_schedule_and_retention_come_from_settings() -> None:
    cron = obj(scenario("tuned"), "CronJob", "postgres-backup")
    assert cron.get("spec.schedule") == "0 1 * * *"
    assert env_of(pod_of(cron)["containers"][0])["RETENTION_DAYS"]["value"] == "14"


# --- monitoring --------------------------------------------------------------------------------


def prometheus_yaml(run_: ProgramRun) -> dict[str, Any]:
    config = obj(run_, "ConfigMap", "prometheus-config", MONITORING).inputs["data"]["prometheus.yml"]
    data: dict[str, Any] = yaml.safe_load(config)
    return data


@pytest.mark.parametrize(("job", "service"), [("postgres-exporter", "postgres"), ("redis-exporter", "redis")])
def test_prometheus_scrapes_the_exporters_in_the_data_namespace(run: ProgramRun, job: str, service: str) -> None:
    jobs = {j["job_name"]: j for j in prometheus_yaml(run)["scrape_configs"]}
    scrape = jobs[job]
    assert scrape["kubernetes_sd_configs"] == [{"role": "endpointslice", "namespaces": {"names": [DATA]}}]
    keep = next(r for r in scrape["relabel_configs"] if r.get("action") == "keep")
    # The client Service only: the headless one has the same port and would double every series.
    assert keep["regex"] == f"{service};metrics"
    assert scrape["metrics_path"] == "/metrics"
    assert not {n for n in jobs if "chroma" in n}

    egress = obj(run, "NetworkPolicy", "prometheus", MONITORING).get("spec.egress")
    to_data = {port for ns, _, port in peers(egress, "to") if ns == DATA}
    assert to_data == {"9121", "9187"}
    role = obj(run, "Role", "prometheus-discovery")
    assert {"pods", "services"} <= set(role.inputs["rules"][0]["resources"])


# --- the stack-outputs read --------------------------------------------------------------------


def test_the_last_updates_outputs_are_read_once_for_this_stack() -> None:
    result, mocks = run_data("staging")
    assert result.error is None, result.error
    reads = [args for token, args in mocks.calls if token == READ_STACK_OUTPUTS]
    assert len(reads) == 1
    assert reads[0]["name"].endswith("/support-platform/staging")


def test_postgres_sets_a_rotated_password_again_on_every_start(run: ProgramRun) -> None:
    main = containers(obj(run, "StatefulSet", "postgres"))["postgres"]
    assert main["lifecycle"]["postStart"]["exec"]["command"] == ["/bin/sh", "-c", ROLE_SYNC_HOOK]
    # The hook reads the password from the Secret's file, never from an argument.
    assert '"$POSTGRES_PASSWORD_FILE"' in ROLE_SYNC_HOOK and env_of(main)["POSTGRES_PASSWORD_FILE"]["value"]
