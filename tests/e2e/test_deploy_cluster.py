"""Deploying for real on a throwaway control plane: preflight, verification and the automatic rollback.

`make cluster-test`. A cluster of its own (scripts/cluster.sh, kwok's stages as Stage objects), bare
at first: the staging stack must be refused by its preflight before anything exists, then deploy
and verify once the CRDs and its GatewayClass are there. Then a release whose pods never become
ready (a kwok Stage holds pods of that image Running but unready, taking precedence over the
default pod-ready stage by weight) goes through scripts/deploy.py, as the workflows run it:
verification fails, the previous version is restored by itself, and no stateful object is replaced.
The edge is a server on 127.0.0.1 standing in for the proxy (kwok runs no Envoy). Tests run in order.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Project, copy_project
from tests.e2e.test_cluster import (
    DATA_NAMESPACE,
    NAMED_OBJECTS,
    NAMESPACE,
    Cluster,
    bin_dir,
    install_crds,
    live_image,
    state,
    uids,
    wait_available,
)
from tests.health_server import health_server

pytestmark = [pytest.mark.engine, pytest.mark.cluster, pytest.mark.integration]

CLUSTER_NAME = "support-platform-deploy"
IMAGE_A = "ghcr.io/support-platform/api:1.4.0"  # what Pulumi.staging.yaml deploys
IMAGE_NEVER_READY = "ghcr.io/support-platform/api:1.6.0-never-ready"
HELD_UNREADY = {
    "apiVersion": "kwok.x-k8s.io/v1alpha1",
    "kind": "Stage",
    "metadata": {"name": "pod-held-unready"},
    "spec": {
        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
        "selector": {
            "matchExpressions": [
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
                {"key": ".spec.containers.[].image", "operator": "In", "values": [IMAGE_NEVER_READY]},
            ]
        },
        # kwok picks among matching stages by weight; the default pod-ready stage has none (0).
        "weight": 1,
        "next": {
            "statusTemplate": """{{ $now := Now }}
conditions:
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: Initialized}
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: Ready, reason: ContainersNotReady,
   message: "readiness probe failed: HTTP probe failed with statuscode: 503"}
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: ContainersReady, reason: ContainersNotReady}
containerStatuses:
{{ range .spec.containers }}
- {image: {{ .image | Quote }}, name: {{ .name | Quote }}, ready: false, started: true, restartCount: 0,
   state: {running: {startedAt: {{ $now | Quote }}}}}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
"""
        },
    },
}


@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("kwok-deploy")
    env = dict(
        os.environ,
        SUPPORT_PLATFORM_CLUSTER_NAME=CLUSTER_NAME,
        SUPPORT_PLATFORM_CLUSTER_HOME=str(home),
        SUPPORT_PLATFORM_CLUSTER_STAGES="crd",
    )
    env.pop("KUBECONFIG", None)
    kubectl = shutil.which("kubectl") or str(Path(bin_dir()) / "kubectl")
    handle = Cluster(home, home / "clusters" / CLUSTER_NAME / "kubeconfig.yaml", f"kwok-{CLUSTER_NAME}", env, kubectl)
    try:
        handle.script("up")
        yield handle
    finally:
        handle.script("down", check=False)
        assert handle.processes() == [], "the cluster left processes behind"


@pytest.fixture(scope="module")
def edge() -> Iterator[str]:
    """The edge's stand-in (kwok runs no proxy): every health path answers 200."""
    with health_server() as served:
        yield served.url


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory, engine_bin: Path, bare_cluster: Cluster) -> Project:
    project = copy_project(tmp_path_factory.mktemp("deploy-staging"), engine_bin)
    project.set_secrets("staging")
    settings = {
        "target.context": bare_cluster.context,
        "target.kubeconfig": str(bare_cluster.kubeconfig),
        # One api pod with short probe budgets: a release that cannot become ready fails its update in
        # about two minutes (components/rollout.py), not the ten the provider would wait.
        "app.services.api.autoscaling.enabled": "false",
        "app.services.api.replicas": "1",
        "app.services.api.probes.startup.periodSeconds": "1",
        "app.services.api.probes.startup.failureThreshold": "3",
        "app.services.api.probes.readiness.periodSeconds": "1",
        "app.services.api.probes.readiness.failureThreshold": "1",
    }
    for path, value in settings.items():
        project.run("run", "staging", "config", "set", "--path", path, value, "--stack", "staging")
    return project


def deploy(project: Project, edge_url: str, message: str, timeout: str) -> Any:
    return project.script(
        "deploy.py", "--stack", "staging", "--message", message, "--verify-timeout", timeout, "--settle", "5",
        "--edge-url", edge_url,
    )  # fmt: skip


def test_a_bare_cluster_refuses_the_stack_before_anything_is_created(bare_cluster: Cluster, staging: Project) -> None:
    for action in ("preview", "up"):
        result = staging.run(action, "staging", check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert (
            f"the cluster of context '{bare_cluster.context}' lacks 7 prerequisite(s); nothing was deployed" in output
        )
        for missing in (
            "CRD gateways.gateway.networking.k8s.io (Gateway, gateway.networking.k8s.io/v1)",
            "CRD httproutes.gateway.networking.k8s.io",
            "GatewayClass eg",
            "CRD backendtrafficpolicies.gateway.envoyproxy.io",
            "CRD certificates.cert-manager.io",
            "CRD clusterissuers.cert-manager.io",
        ):
            assert missing in output, missing
        assert 'kubectl apply --server-side -f "$(scripts/crds.sh)"' in output
    for namespace in (NAMESPACE, DATA_NAMESPACE, "support-monitoring"):
        assert bare_cluster.kubectl("get", "namespace", namespace, check=False).returncode != 0, namespace
    assert not [r for r in state(staging).get("resources") or [] if r["type"].startswith("kubernetes:")]


def test_with_its_prerequisites_the_stack_deploys_and_verifies(
    bare_cluster: Cluster, staging: Project, edge: str
) -> None:
    install_crds(bare_cluster)
    gateway_class = [o for o in NAMED_OBJECTS if o["kind"] == "GatewayClass"]
    bare_cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": gateway_class})
    )
    result = deploy(staging, edge, "release A", "300")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "verification passed" in output
    for line in (
        "Deployment support-app/api: rolled out, ready",
        "StatefulSet support-data/postgres: rolled out, ready",
    ):
        assert line in output, line
    assert "Job support-app/api-migrations-" in output and ": succeeded" in output
    assert "edge web: GET " in output and "(Host support.staging.example.com) answered 200" in output
    assert "### Deploy `staging`: deployed and verified" in output
    assert live_image(bare_cluster, "api") == IMAGE_A


def test_a_release_that_never_becomes_ready_is_rolled_back_by_the_deploy(
    bare_cluster: Cluster, staging: Project, edge: str
) -> None:
    bare_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(HELD_UNREADY))
    before = uids(bare_cluster)
    assert before, "the app and data namespaces hold Secrets, StatefulSets and claims"
    good = max(u["version"] for u in staging.history("staging") if u["kind"] == "update" and u["result"] == "succeeded")
    staging.run("run", "staging", "config", "set", "--path", "app.services.api.image", IMAGE_NEVER_READY,
                "--stack", "staging")  # fmt: skip

    result = deploy(staging, edge, "release B", "60")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-6000:]
    # What failed: the update's wait for the api, and the verification's look at its pods.
    assert "verification failed" in output
    assert "Deployment support-app/api: rollout not finished" in output
    assert "readiness probe failed: HTTP probe failed with statuscode: 503" in output
    # What was restored, verified again.
    assert f"### Deploy `staging`: FAILED; rolled back to version {good} (verified)" in output, output[-12000:]
    assert f"Restored version {good} (api=api:1.4.0" in output

    wait_available(bare_cluster, "api")
    assert live_image(bare_cluster, "api") == IMAGE_A
    assert uids(bare_cluster) == before, "a Secret, StatefulSet or PVC was replaced"
    history = staging.history("staging")
    failed = [u for u in history if u["message"] == "release B"]
    assert [u["result"] for u in failed] == ["failed"]
    assert history[-1]["result"] == "succeeded"
    assert history[-1]["message"] == f"rollback to version {good} (from version {failed[0]['version']})"
    assert f"image: {IMAGE_A}" in (staging.root / "Pulumi.staging.yaml").read_text()
    assert not state(staging).get("pending_operations")
