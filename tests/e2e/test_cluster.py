"""The real engine against a real control plane: what only an API server can say.

`make cluster-test`. One throwaway cluster (scripts/cluster.sh: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok's fake kubelets, all on 127.0.0.1) serves the
whole module and is always torn down, leaving no process. One staging-like stack is deployed to it
and shared by the tests, which run in file order on purpose: up, what the API server filled in,
admission, idempotency, rollback, faults, destroy. The policy pack is on for every up.

The stack is the staging stack file with only `target` pointed at the throwaway cluster through
`pulumi config set --path`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.data.chroma import CLAIM, SNAPSHOT_GROUP, SNAPSHOT_NAME, SNAPSHOT_VERBS
from tests.e2e.conftest import MANIFEST_TYPES, ROOT, LocalRegistry, Project, copy_project

pytestmark = [pytest.mark.engine, pytest.mark.cluster]

CLUSTER_SH = ROOT / "scripts" / "cluster.sh"
CLUSTER_NAME = "support-platform-e2e"
NAMESPACE = "support-app"
DATA_NAMESPACE = "support-data"
SERVICES = ("api", "web")
IMAGE_A = "ghcr.io/support-platform/api:1.4.0"  # what Pulumi.staging.yaml deploys
IMAGE_B = "ghcr.io/support-platform/api:1.5.0"
AGENT_IMAGE = "ghcr.io/support-platform/agent:1.4.0"
KINDS = "deployments,services,hpa,pdb,networkpolicies,serviceaccounts,secrets,configmaps"


@dataclass
class Cluster:
    home: Path
    kubeconfig: Path
    context: str
    env: dict[str, str]
    kubectl_binary: str

    def script(self, action: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(CLUSTER_SH), action], env=self.env, capture_output=True, text=True, check=False, timeout=600
        )
        if check:
            assert proc.returncode == 0, f"cluster.sh {action} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
        return proc

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [self.kubectl_binary, "--kubeconfig", str(self.kubeconfig), "--context", self.context, *args]
        proc = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False, timeout=300)
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def processes(self) -> list[int]:
        """Pids of processes whose command line names this cluster's work directory."""
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if str(self.home).encode() in cmdline.read_bytes():
                    found.append(int(cmdline.parent.name))
            except OSError:
                continue
        return found


def bin_dir() -> str:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "cluster" / "ensure-cluster.sh")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"building the control plane failed:\n{proc.stderr[-4000:]}"
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("kwok")
    env = dict(os.environ, SUPPORT_PLATFORM_CLUSTER_NAME=CLUSTER_NAME, SUPPORT_PLATFORM_CLUSTER_HOME=str(home))
    env.pop("KUBECONFIG", None)
    # The machine's kubectl, else the one scripts/cluster/ensure-cluster.sh builds when there is none.
    kubectl = shutil.which("kubectl") or str(Path(bin_dir()) / "kubectl")
    handle = Cluster(home, home / "clusters" / CLUSTER_NAME / "kubeconfig.yaml", f"kwok-{CLUSTER_NAME}", env, kubectl)
    try:
        started = handle.script("up")
        assert started.stdout.strip().splitlines()[-1] == f"export KUBECONFIG={handle.kubeconfig}"
        install_crds(handle)
        yield handle
    finally:
        handle.script("down", check=False)
        assert handle.processes() == [], "the cluster left processes behind"


def install_crds(cluster: Cluster) -> None:
    """The published CRDs of the custom resources the program emits (scripts/crds.sh, where the edge
    tier brings it), so the API server validates those resources as a real cluster would."""
    script = ROOT / "scripts" / "crds.sh"
    if not script.exists():
        return
    proc = subprocess.run([str(script)], capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, f"scripts/crds.sh failed:\n{proc.stderr[-3000:]}"
    directory = proc.stdout.strip().splitlines()[-1]
    # Server-side: the largest CRDs exceed the last-applied annotation of a client-side apply.
    cluster.kubectl("apply", "--server-side", "-f", directory)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    # What a cluster with Envoy Gateway and cert-manager has, and the stacks name (the preflight asks).
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": NAMED_OBJECTS}))


NAMED_OBJECTS: list[dict[str, Any]] = [
    {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "eg"},
        "spec": {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"},
    },
    {
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": {"name": "letsencrypt-production"},
        "spec": {"selfSigned": {}},
    },
]


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory, engine_bin: Path, cluster: Cluster) -> Project:
    project = copy_project(tmp_path_factory.mktemp("staging"), engine_bin)
    project.set_secrets("staging")
    config_set(project, "target.context", cluster.context)
    config_set(project, "target.kubeconfig", str(cluster.kubeconfig))
    return project


def config_set(project: Project, path: str, value: str) -> None:
    project.run("run", "staging", "config", "set", "--path", path, value, "--stack", "staging")


def up(project: Project, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = project.run("up", "staging", *args, check=check)
    if check:
        assert "support-platform-guardrails" in result.stdout, "the policy pack did not run"
    return result


def state(project: Project) -> dict[str, Any]:
    exported: dict[str, Any] = json.loads(project.run("run", "staging", "stack", "export", "--stack", "staging").stdout)
    return exported["deployment"]


def outputs_of(project: Project, kind: str, name: str) -> dict[str, Any]:
    for resource in state(project).get("resources") or []:
        outputs = resource.get("outputs") or {}
        if outputs.get("kind") == kind and (outputs.get("metadata") or {}).get("name") == name:
            return dict(outputs)
    raise AssertionError(f"no {kind} {name} in the stack's state")


def live_objects(project: Project) -> list[tuple[str, str, list[str]]]:
    """(kubectl resource, name, namespace args) of every Kubernetes object in the stack's state."""
    found = []
    for resource in state(project).get("resources") or []:
        outputs = resource.get("outputs") or {}
        if not resource["type"].startswith("kubernetes:") or "kind" not in outputs:
            continue
        group, _, version = str(outputs["apiVersion"]).rpartition("/")
        kind = str(outputs["kind"])
        metadata = outputs.get("metadata") or {}
        namespace = ["-n", metadata["namespace"]] if metadata.get("namespace") else []
        found.append((f"{kind}.{version}.{group}" if group else kind, str(metadata["name"]), namespace))
    return found


def uids(cluster: Cluster) -> dict[str, str]:
    """uid of every object that holds data: Secrets, StatefulSets, PersistentVolumeClaims, in the app's
    and the data tier's namespaces."""
    found = {}
    for namespace in (NAMESPACE, DATA_NAMESPACE):
        listing = cluster.get("secrets,statefulsets,persistentvolumeclaims", "-n", namespace)
        for item in listing["items"]:
            found[f"{namespace}/{item['kind']}/{item['metadata']['name']}"] = item["metadata"]["uid"]
    return found


def wait_available(cluster: Cluster, *deployments: str) -> None:
    names = [f"deployment/{d}" for d in deployments] or ["deployments", "--all"]
    cluster.kubectl("wait", "-n", NAMESPACE, "--for=condition=Available", "--timeout=120s", *names)


def live_image(cluster: Cluster, deployment: str) -> str:
    spec = cluster.get("deployment", deployment, "-n", NAMESPACE)["spec"]["template"]["spec"]
    return str(next(c["image"] for c in spec["containers"] if c["name"] == deployment))


def summary(output: str) -> str:
    return output.split("Resources:", 1)[-1]


# --- the control plane ----------------------------------------------------------------------


def listening_sockets(pids: list[int]) -> set[str]:
    """Local addresses of the TCP sockets these processes listen on (from /proc, IPv4 and IPv6)."""
    inodes: set[str] = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.add(fields[1].split(":")[0])
    return addresses


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1 as /proc writes them


def test_the_control_plane_runs_every_component_on_loopback_only(cluster: Cluster) -> None:
    pid_files = {p.stem for p in (cluster.home / "clusters" / CLUSTER_NAME / "pids").glob("*.pid")}
    assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller"} <= pid_files
    addresses = listening_sockets(cluster.processes())
    assert addresses, "no listening socket found"
    assert addresses <= LOOPBACK, f"a component listens beyond the loopback interface: {addresses}"
    nodes = cluster.get("nodes")["items"]
    assert len(nodes) == 2
    classes = cluster.get("storageclasses")["items"]
    default = [c for c in classes if c["metadata"]["annotations"].get("storageclass.kubernetes.io/is-default-class")]
    assert [(c["provisioner"], c["volumeBindingMode"]) for c in default] == [("kubernetes.io/host-path", "Immediate")]


def test_a_claim_binds_through_the_default_storage_class(cluster: Cluster) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "probe-claim", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(claim))
    try:
        cluster.kubectl(
            "wait", "-n", "default", "--for=jsonpath={.status.phase}=Bound", "--timeout=60s", "pvc/probe-claim"
        )
    finally:
        cluster.kubectl("delete", "-n", "default", "pvc/probe-claim", "--wait=false", check=False)


# --- Chroma's snapshot script against the API server ------------------------------------------

SNAPSHOT_SCRIPT = ROOT / "components" / "data" / "files" / "chroma-snapshot.sh"
SNAPSHOT_CLASS = "e2e-snapshots"
SNAPSHOT_LABEL = "support-platform.io/snapshot-of=chroma"


def volume_snapshot(namespace: str, name: str, labelled: bool = True) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labelled:
        metadata["labels"] = {"support-platform.io/snapshot-of": "chroma"}
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": metadata,
        "spec": {"volumeSnapshotClassName": SNAPSHOT_CLASS, "source": {"persistentVolumeClaimName": CLAIM}},
    }


def snapshot_namespace(cluster: Cluster, namespace: str, *old: str) -> Path:
    """A namespace with the CronJob's ServiceAccount bound to the program's Role rules, labelled
    snapshots named `old` (and one unlabelled), and a kubeconfig that impersonates that account: the
    script runs with exactly the permissions it gets in the cluster."""
    rbac: dict[str, Any] = {"name": SNAPSHOT_NAME, "namespace": namespace}
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": SNAPSHOT_CLASS},
            # No CSI driver runs here: the test plays the snapshot controller.
            "driver": "snapshots.e2e.example.com",
            "deletionPolicy": "Delete",
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": rbac},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": rbac,
            "rules": [{"apiGroups": [SNAPSHOT_GROUP], "resources": ["volumesnapshots"], "verbs": list(SNAPSHOT_VERBS)}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": rbac,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SNAPSHOT_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": SNAPSHOT_NAME, "namespace": namespace}],
        },
    ]
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    snapshots = [volume_snapshot(namespace, name) for name in old]
    snapshots.append(volume_snapshot(namespace, "by-hand", labelled=False))
    cluster.kubectl("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": snapshots}))

    config = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == cluster.context)
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    user["as"] = f"system:serviceaccount:{namespace}:{SNAPSHOT_NAME}"
    config["current-context"] = cluster.context
    # Next to the original: certificate paths in it may be relative to its directory.
    path = cluster.kubeconfig.with_name(f"snapshot-{namespace}.yaml")
    path.write_text(yaml.safe_dump(config))
    return path


def run_snapshot_script(
    cluster: Cluster, kubeconfig: Path, namespace: str, keep: int, wait_seconds: int
) -> tuple[subprocess.CompletedProcess[str], float]:
    home = kubeconfig.with_name(f"home-{namespace}")
    home.mkdir(exist_ok=True)
    env = {
        "PATH": f"{Path(cluster.kubectl_binary).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "KUBECONFIG": str(kubeconfig),
        "NAMESPACE": namespace,
        "CLAIM": CLAIM,
        "CLASS": SNAPSHOT_CLASS,
        "KEEP": str(keep),
        "WAIT_SECONDS": str(wait_seconds),
    }
    started = time.monotonic()
    proc = subprocess.run(
        ["/bin/sh", str(SNAPSHOT_SCRIPT)], env=env, capture_output=True, text=True, check=False, timeout=180
    )
    return proc, time.monotonic() - started


def labelled_snapshots(cluster: Cluster, namespace: str) -> list[str]:
    items = cluster.get("volumesnapshots", "-n", namespace, "-l", SNAPSHOT_LABEL)["items"]
    return sorted(i["metadata"]["name"] for i in items)


def set_status_of_new_snapshot(
    cluster: Cluster, namespace: str, known: set[str], status: dict[str, Any], found: list[str]
) -> None:
    """What a snapshot controller would do: set the status of the first labelled snapshot not in `known`."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = set(labelled_snapshots(cluster, namespace)) - known
        if new:
            name = min(new)
            patched = cluster.kubectl(
                "patch", "-n", namespace, "volumesnapshot", name, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": status}), check=False,
            )  # fmt: skip
            found.append(name if patched.returncode == 0 else f"patch failed: {patched.stderr}")
            return
        time.sleep(0.3)
    found.append("no new snapshot appeared")


def test_the_chroma_snapshot_script_waits_for_ready_and_keeps_the_newest(cluster: Cluster) -> None:
    namespace = "snapshots-ready"
    old = ("chroma-20200101-000001", "chroma-20200101-000002", "chroma-20200101-000003")
    kubeconfig = snapshot_namespace(cluster, namespace, *old)
    found: list[str] = []
    controller = threading.Thread(
        target=set_status_of_new_snapshot,
        args=(cluster, namespace, set(old), {"readyToUse": True, "restoreSize": "1Mi"}, found),
    )
    controller.start()
    try:
        proc, _ = run_snapshot_script(cluster, kubeconfig, namespace, keep=2, wait_seconds=60)
    finally:
        controller.join()
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    (new,) = found
    assert re.fullmatch(r"chroma-[0-9]{8}-[0-9]{6}", new), new
    assert f"VolumeSnapshot {new} is ready to use" in proc.stdout
    snapshot = cluster.get("volumesnapshot", "-n", namespace, new)
    assert snapshot["spec"] == {
        "volumeSnapshotClassName": SNAPSHOT_CLASS,
        "source": {"persistentVolumeClaimName": CLAIM},
    }
    # KEEP=2: the newest old one and the new one; the unlabelled snapshot is not the script's.
    assert labelled_snapshots(cluster, namespace) == sorted([old[-1], new])
    assert cluster.get("volumesnapshot", "-n", namespace, "by-hand")["metadata"]["name"] == "by-hand"
    for pruned in old[:-1]:
        assert f"prune: deleted VolumeSnapshot {pruned}" in proc.stdout


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("never-ready", None, "SNAPSHOT NOT READY"),
        ("error", {"readyToUse": False, "error": {"message": "the driver refused"}}, "the driver refused"),
    ],
)
def test_the_chroma_snapshot_script_fails_loudly_and_prunes_nothing(
    cluster: Cluster, case: str, status: dict[str, Any] | None, message: str
) -> None:
    namespace = f"snapshots-{case}"
    old = ("chroma-20200101-000001",)
    kubeconfig = snapshot_namespace(cluster, namespace, *old)
    found: list[str] = []
    controller = None
    if status is not None:
        controller = threading.Thread(
            target=set_status_of_new_snapshot, args=(cluster, namespace, set(old), status, found)
        )
        controller.start()
    try:
        proc, took = run_snapshot_script(cluster, kubeconfig, namespace, keep=1, wait_seconds=6)
    finally:
        if controller is not None:
            controller.join()
    assert proc.returncode == 1, f"{proc.stdout}\n{proc.stderr}"
    assert message in proc.stderr, proc.stderr
    assert "error:" in proc.stderr and "prune:" not in proc.stdout
    # Within the bound (plus kubectl's own time), not at the Job's deadline.
    assert took < 6 + 30, took
    # The old snapshot stays; the failed one is gone, so it never counts as one of KEEP.
    assert labelled_snapshots(cluster, namespace) == list(old)


# --- up -------------------------------------------------------------------------------------


def test_up_deploys_staging_and_the_cluster_runs_it(cluster: Cluster, staging: Project) -> None:
    result = up(staging)
    # The stack policies judged the live objects (outputs) and found nothing, advisory included.
    assert "[mandatory]" not in result.stdout and "[advisory]" not in result.stdout, result.stdout[-4000:]
    wait_available(cluster, *SERVICES)
    for service in SERVICES:
        endpoints = cluster.get("endpointslices", "-n", NAMESPACE, "-l", f"kubernetes.io/service-name={service}")
        ready = [
            e for s in endpoints["items"] for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")
        ]
        assert len(ready) >= 2, f"service {service} has no ready endpoints: {endpoints}"
    listing = cluster.get(KINDS, "-n", NAMESPACE, "-l", "app.kubernetes.io/managed-by=pulumi")
    found = {(i["kind"], i["metadata"]["name"]) for i in listing["items"]}
    for service in SERVICES:
        for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceAccount"):
            assert (kind, service) in found, f"{kind} {service} is missing: {sorted(found)}"
    kinds = {kind for kind, _ in found}
    assert {"NetworkPolicy", "Secret", "ConfigMap"} <= kinds
    namespace = cluster.get("namespace", NAMESPACE)["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"
    # Every Kubernetes object in the state, custom resources included, is live on the cluster.
    objects = live_objects(staging)
    assert len(objects) >= 20
    for resource, name, namespace_args in objects:
        cluster.kubectl("get", resource, name, *namespace_args)


def test_the_monitoring_workloads_become_ready_with_bound_volumes(cluster: Cluster, staging: Project) -> None:
    namespace = "support-monitoring"
    cluster.kubectl(
        "wait", "-n", namespace, "--for=jsonpath={.status.readyReplicas}=1", "--timeout=120s",
        "statefulset/prometheus", "statefulset/alertmanager",
    )  # fmt: skip
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Available", "--timeout=120s", "deployment/grafana")
    claims = cluster.get("persistentvolumeclaims", "-n", namespace)["items"]
    owners = {c["metadata"]["name"].rsplit("-", 1)[0]: c["status"].get("phase") for c in claims}
    assert any(name.endswith("prometheus") for name in owners), owners
    assert any(name.endswith("alertmanager") for name in owners), owners
    assert set(owners.values()) == {"Bound"}, owners
    labels = cluster.get("namespace", namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_stores_become_ready_with_bound_volumes_and_migrations_run_before_the_api(
    cluster: Cluster, staging: Project
) -> None:
    # `up` waited for them already (the provider awaits StatefulSets and Jobs); this is the cluster's word.
    cluster.kubectl(
        "wait", "-n", DATA_NAMESPACE, "--for=jsonpath={.status.readyReplicas}=1", "--timeout=120s",
        "statefulset/postgres", "statefulset/redis", "statefulset/chroma",
    )  # fmt: skip
    claims = {
        c["metadata"]["name"]: c["status"].get("phase") for c in cluster.get("pvc", "-n", DATA_NAMESPACE)["items"]
    }
    assert {"data-postgres-0", "data-redis-0", "data-chroma-0", "postgres-backups"} <= set(claims), claims
    assert set(claims.values()) == {"Bound"}, claims
    pods = cluster.get("pods", "-n", DATA_NAMESPACE, "-l", "app.kubernetes.io/name=postgres")["items"]
    assert pods and pods[0]["spec"]["priorityClassName"] == "support-data-stores"
    assert cluster.get("priorityclass", "support-data-stores")["value"] > 0
    assert cluster.get("cronjob", "postgres-backup", "-n", DATA_NAMESPACE)["spec"]["concurrencyPolicy"] == "Forbid"

    jobs = cluster.get("jobs", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=api-migrations")["items"]
    assert len(jobs) == 1, [j["metadata"]["name"] for j in jobs]
    job = jobs[0]
    assert job["status"].get("succeeded") == 1, job["status"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["alembic", "upgrade", "head"]
    # The api's pods were created only after the migration finished (the Deployment depends on the Job).
    replica_sets = cluster.get("replicasets", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=api")["items"]
    first_rollout = min(rs["metadata"]["creationTimestamp"] for rs in replica_sets)
    assert job["status"]["completionTime"] <= first_rollout, (job["status"], first_rollout)


def test_a_live_pod_runs_hardened(cluster: Cluster, staging: Project) -> None:
    pods = cluster.get("pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=api")["items"]
    assert len(pods) >= 2, "the HPA floor of staging is two pods"
    pod = pods[0]
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["nodeName"], "the scheduler placed the pod"
    pod_context = pod["spec"]["securityContext"]
    assert pod_context["runAsNonRoot"] is True
    assert pod_context["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["spec"]["automountServiceAccountToken"] is False
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "api"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context.get("runAsUser", pod_context.get("runAsUser")) >= 10000
    probes = [container[p] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
    assert probes[1]["httpGet"]["path"] != probes[2]["httpGet"]["path"], "liveness must not be readiness"
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]


def test_outputs_carry_server_defaults_and_the_pack_judges_declarations(staging: Project) -> None:
    """What the kubernetes provider puts in outputs, which stack policies see after an up."""
    outputs = outputs_of(staging, "Deployment", "api")
    assert outputs["spec"]["replicas"] >= 1, "the API server fills in spec.replicas"
    managed = outputs["metadata"]["managedFields"]
    for entry in managed:  # shown by pytest -rP
        spec_fields = sorted(entry["fieldsV1"].get("f:spec", {}))
        print(entry["manager"], entry["operation"], entry.get("subresource"), spec_fields)
    print("outputs keys:", sorted(outputs))
    appliers = [m for m in managed if m["operation"] == "Apply"]
    assert appliers, f"no server-side apply field manager in outputs: {managed}"
    assert all("f:replicas" not in m["fieldsV1"].get("f:spec", {}) for m in appliers)
    # The update above passed the mandatory stack policy hpa-sanity on exactly these outputs.


def test_pod_security_admission_rejects_a_non_compliant_pod(cluster: Cluster, staging: Project) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root-and-privileged", "namespace": NAMESPACE},
        "spec": {
            "containers": [
                {
                    "name": "shell",
                    "image": "docker.io/library/busybox:1.36",
                    "securityContext": {"privileged": True, "runAsUser": 0},
                }
            ]
        },
    }
    result = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pod), check=False)
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in result.stderr
    assert "privileged" in result.stderr and "seccompProfile" in result.stderr
    assert cluster.kubectl("get", "pod", "root-and-privileged", "-n", NAMESPACE, check=False).returncode != 0


# --- idempotency ----------------------------------------------------------------------------


def test_a_second_up_and_a_refresh_change_nothing(staging: Project) -> None:
    again = up(staging, "--expect-no-changes")
    assert "unchanged" in summary(again.stdout)
    refreshed = staging.run("refresh", "staging", "--expect-no-changes")
    assert "unchanged" in summary(refreshed.stdout)


# --- rollback -------------------------------------------------------------------------------


def test_rollback_restores_image_a_on_the_live_cluster_without_replacing_data(
    cluster: Cluster, staging: Project
) -> None:
    before = uids(cluster)
    assert before, "the app namespace holds Secrets"
    first = next(u for u in staging.history("staging") if u["kind"] == "update" and u["result"] == "succeeded")
    assert live_image(cluster, "api") == IMAGE_A
    config_set(staging, "app.services.api.image", IMAGE_B)
    up(staging)
    wait_available(cluster, "api")
    assert live_image(cluster, "api") == IMAGE_B

    result = staging.script("rollback.py", "--stack", "staging", "--to", str(first["version"]), "--yes")
    assert result.returncode == 0, f"rollback failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    wait_available(cluster, "api")
    assert live_image(cluster, "api") == IMAGE_A
    latest = staging.history("staging")[-1]
    assert latest["result"] == "succeeded"
    assert f"rollback to version {first['version']}" in latest["message"]
    assert uids(cluster) == before, "a Secret, StatefulSet or PVC was replaced"


# --- faults ---------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def session_members(session: int) -> list[int]:
    """Pids of the live processes of a session (field 6 of /proc/<pid>/stat)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def enable_agent(staging: Project) -> None:
    config_set(staging, "app.services.agent.enabled", "true")
    config_set(staging, "app.services.agent.image", AGENT_IMAGE)


def test_a_killed_up_leaves_pending_creates_that_block_rollback_until_recovered(
    cluster: Cluster, staging: Project
) -> None:
    before = uids(cluster)
    enable_agent(staging)
    # With every node cordoned, the new agent pods stay Pending, so the provider is still awaiting
    # the Deployment's rollout when the CLI is killed (and not, by chance, writing its state).
    nodes = [n["metadata"]["name"] for n in cluster.get("nodes")["items"]]
    cluster.kubectl("cordon", *nodes)
    process = subprocess.Popen(
        [str(staging.root / "scripts" / "stack.sh"), "up", "staging"],
        cwd=staging.root,
        env=staging.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: whatever the kill orphans is ours to end
    )
    assert process.stdout is not None
    seen = []
    killed = None
    try:
        deadline = time.monotonic() + 300
        for line in process.stdout:
            seen.append(line)
            if "Deployment" in line and "agent" in line and "creating" in line:
                time.sleep(3)  # the other agent resources finish; the Deployment waits for its pods
                pulumi = [p for p in descendants(process.pid) if command_name(p) == "pulumi"]
                assert pulumi, "no pulumi process under stack.sh"
                killed = pulumi[0]
                os.kill(killed, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "the up never reached the agent Deployment"
        process.wait(timeout=60)
    finally:
        # The language host, the program and the providers outlive the killed engine (each in its own
        # process group): end them by the session started above for this.
        time.sleep(2)
        for pid in session_members(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)
        cluster.kubectl("uncordon", *nodes)
    assert killed is not None, "".join(seen[-40:])
    assert process.returncode != 0
    deadline = time.monotonic() + 10
    while session_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_members(process.pid) == [], "the killed update left processes behind"

    pending = state(staging).get("pending_operations") or []
    assert pending, "the killed update left no pending operation"
    assert any(op["type"] == "creating" for op in pending)

    refused = staging.script("rollback.py", "--stack", "staging", "--to", "1", "--yes")
    assert refused.returncode == 2
    assert "pending operation" in refused.stderr
    assert "pulumi refresh --stack staging --clear-pending-creates" in refused.stderr

    assert "pulumi cancel --stack staging --yes" in refused.stderr
    locked = staging.run("refresh", "staging", "--clear-pending-creates", check=False)
    assert locked.returncode != 0 and "the stack is currently locked" in locked.stderr + locked.stdout
    staging.run("run", "staging", "cancel", "--yes", "--stack", "staging")
    staging.run("refresh", "staging", "--clear-pending-creates")
    assert not state(staging).get("pending_operations")
    up(staging)
    wait_available(cluster, "agent", *SERVICES)
    again = up(staging, "--expect-no-changes")
    assert "unchanged" in summary(again.stdout)
    after = uids(cluster)
    assert {k: after[k] for k in before} == before, "data was replaced during the recovery"


def test_an_up_against_a_stopped_api_server_fails_clearly_and_keeps_the_state(
    cluster: Cluster, staging: Project
) -> None:
    checkpoint = state(staging)["resources"]
    config_set(staging, "app.services.api.image", IMAGE_B)
    cluster.script("stop-apiserver")
    try:
        failed = up(staging, check=False)
    finally:
        cluster.script("start-apiserver")
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    print(output[-2000:])  # the error a person sees (pytest -rP shows it)
    assert "unreachable" in output or "connection refused" in output, output[-3000:]
    after = state(staging)
    assert not after.get("pending_operations")
    assert sorted(r["urn"] for r in after["resources"]) == sorted(r["urn"] for r in checkpoint)
    # The state still records what the cluster runs: the failed update changed neither.
    recorded = outputs_of(staging, "Deployment", "api")["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in recorded if c["name"] == "api"] == [live_image(cluster, "api")] == [IMAGE_A]
    up(staging)
    wait_available(cluster, "api")
    assert live_image(cluster, "api") == IMAGE_B


# --- destroy --------------------------------------------------------------------------------


# --- images built by the update, running on the cluster --------------------------------------


def test_a_built_image_runs_on_the_live_cluster_by_its_pushed_digest(
    cluster: Cluster, staging: Project, local_registry: LocalRegistry
) -> None:
    context = staging.root / "app-src"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY message.txt /message.txt\n")
    (context / "message.txt").write_text("built for the cluster\n")
    staging.run("run", "staging", "config", "rm", "--path", "app.services.api.image", "--stack", "staging")
    repository = f"{local_registry.address}/support/api"
    config_set(staging, "app.services.api.build.context", "app-src")
    config_set(staging, "app.services.api.build.repository", repository)
    config_set(staging, "app.services.api.build.tag", "2.0.0")
    staging.env["DOCKER_HOST"] = local_registry.docker_host
    up(staging)
    wait_available(cluster, "api")
    image = live_image(cluster, "api")
    assert image.startswith(f"{repository}@sha256:"), image
    digest = image.split("@", 1)[1]
    headers, _ = local_registry.get(f"/v2/support/api/manifests/{digest}", accept=MANIFEST_TYPES)
    assert headers["Docker-Content-Digest"] == digest, "the registry serves what the cluster runs"


# --- production: the pull-request gate on real plans ------------------------------------------


def app_tier_production(project: Project, cluster: Cluster, namespace: str = "support-prod") -> None:
    """Point a copy's production stack at the throwaway cluster with only its app tier: beside the
    staging stack's namespaces (a namespace belongs to one stack's field manager), without monitoring
    and with the stores as managed services. Production protects the monitoring and data StatefulSets
    (its pack refuses them otherwise), which a test could then not destroy; tests/e2e/test_data_engine.py
    proves that protection."""
    project.set_secrets("production")

    def set_config(path: str, value: str) -> None:
        project.run("run", "production", "config", "set", "--path", path, value, "--stack", "production")

    set_config("target.context", cluster.context)
    set_config("target.kubeconfig", str(cluster.kubeconfig))
    set_config("namespaces.app", namespace)
    set_config("network.monitoringNamespace", f"{namespace}-monitoring")
    set_config("monitoring.mode", "none")
    for store, port, key in (("postgres", "5432", "postgresPassword"), ("redis", "6379", "redisPassword"),
                             ("chroma", "443", "chromaToken")):  # fmt: skip
        set_config(f"data.{store}.mode", "external")
        set_config(f"data.{store}.external.host", f"{store}.managed.example.com")
        set_config(f"data.{store}.external.port", port)
        set_config(f"data.{store}.external.cidr", "10.20.0.0/16")
        project.run("run", "production", "config", "set", "--secret", key, "--stack", "production",
                    stdin=f"test-{store}-0f1e2d3c4b5a6978")  # fmt: skip


def test_the_gate_passes_a_clean_production_plan_and_blocks_one_that_replaces_data(
    tmp_path_factory: pytest.TempPathFactory, engine_bin: Path, cluster: Cluster
) -> None:
    production = copy_project(tmp_path_factory.mktemp("production"), engine_bin)
    app_tier_production(production, cluster)

    def set_config(path: str, value: str) -> None:
        production.run("run", "production", "config", "set", "--path", path, value, "--stack", "production")

    try:
        deployed = production.run("up", "production")
        assert "support-platform-guardrails" in deployed.stdout
        clean = production.script("pr_gate.py", "--stack", "production")
        assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]
        assert "`production`: gate passed" in clean.stdout and "No changes." in clean.stdout

        # Moving the app to another namespace replaces every namespaced object, data included.
        set_config("namespaces.app", "support-prod-moved")
        blocked = production.script("pr_gate.py", "--stack", "production")
        assert blocked.returncode == 1, blocked.stdout[-3000:] + blocked.stderr[-3000:]
        assert "`production`: gate blocked" in blocked.stdout
        assert "Secret holding data `api-secrets`" in blocked.stdout
        assert "Namespace `app-namespace`" in blocked.stdout
    finally:
        set_config("namespaces.app", "support-prod")
        production.run("destroy", "production", check=False)
    for namespace in ("support-prod", "support-prod-monitoring"):
        assert cluster.kubectl("get", "namespace", namespace, check=False).returncode != 0


def test_operator_mode_resources_are_accepted_by_the_api_server(cluster: Cluster, staging: Project) -> None:
    # The Prometheus Operator's published CRDs are installed with the others (scripts/crds.sh).
    config_set(staging, "monitoring.mode", "operator")
    config_set(staging, "monitoring.operator.selectorLabels.release", "kube-prometheus-stack")
    up(staging)
    found = cluster.get(
        "servicemonitors.monitoring.coreos.com,prometheusrules.monitoring.coreos.com,"
        "alertmanagerconfigs.monitoring.coreos.com",
        "--all-namespaces",
        "-l",
        "release=kube-prometheus-stack",
    )["items"]
    kinds = {item["kind"] for item in found}
    assert {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig"} <= kinds, kinds
    assert cluster.kubectl("get", "statefulset", "prometheus", "-n", "support-monitoring", check=False).returncode != 0


def test_destroy_removes_everything_it_created(cluster: Cluster, staging: Project) -> None:
    staging.run("destroy", "staging")
    assert not [r for r in state(staging).get("resources") or [] if r["type"].startswith("kubernetes:")]
    gone = cluster.kubectl("get", "namespace", NAMESPACE, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    left = cluster.get(KINDS, "--all-namespaces", "-l", "app.kubernetes.io/part-of=support-platform")
    assert left["items"] == []
