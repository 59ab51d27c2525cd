"""Drift and the gate's capacity delta on the throwaway control plane (`make cluster-test`).

One cluster for the module (tests/e2e/test_cluster.py's fixture, started afresh here) with a
staging stack deployed once: ten drift checks in a row after `up` find nothing; the HPA scaling a
Deployment is not drift; hand edits (`kubectl` on the api's image, a NetworkPolicy rule, a Secret's
data) are each reported with resource and property, are invisible to a plain preview but fail the
next update of their objects, and are undone as the summary says; the
allowlist hides known noise from real output. What the summary says to do to undo drift is done
and works. Then production's app tier, for the gate on real
production plans: the exact capacity delta, the growth cap and the reason for a replacement.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
import time
from pathlib import Path

import pytest

from tests.e2e import test_cluster as kwok
from tests.e2e.conftest import Project, copy_project
from tests.harness import TEST_SECRETS

pytestmark = [pytest.mark.engine, pytest.mark.cluster]

cluster = kwok.cluster  # the module's own throwaway control plane
NAMESPACE = kwok.NAMESPACE
HOTFIX = "ghcr.io/support-platform/api:9.9.9-hotfix"
EDITED_KEY = "sk-edited-by-hand-0f1e2d3c"


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory, engine_bin: Path, cluster: kwok.Cluster) -> Project:
    project = copy_project(tmp_path_factory.mktemp("drift"), engine_bin)
    project.set_secrets("staging")
    kwok.config_set(project, "target.context", cluster.context)
    kwok.config_set(project, "target.kubeconfig", str(cluster.kubeconfig))
    kwok.up(project)
    kwok.wait_available(cluster, *kwok.SERVICES)
    return project


def drift(project: Project, *args: str) -> tuple[int, str]:
    proc = project.script("drift.py", "--stack", "staging", *args)
    assert proc.returncode in (0, 1), f"drift check failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.returncode, proc.stdout


def test_ten_checks_in_a_row_after_up_find_nothing(staging: Project) -> None:
    for check in range(10):
        code, out = drift(staging)
        assert code == 0 and "### ✅ `staging`: no drift" in out, f"check {check + 1}:\n{out}"


def test_the_hpa_changing_replicas_is_not_drift(cluster: kwok.Cluster, staging: Project) -> None:
    # Above the HPA's maximum (4): the autoscaler itself scales the Deployment back, through the scale
    # subresource, as it does when load changes.
    cluster.kubectl("scale", "-n", NAMESPACE, "deployment/web", "--replicas=6")
    deadline = time.monotonic() + 120
    while True:
        events = cluster.get("events", "-n", NAMESPACE, "--field-selector", "involvedObject.name=web")["items"]
        rescaled = [
            e for e in events if e.get("reason") == "SuccessfulRescale" and "New size: 4" in e.get("message", "")
        ]
        replicas = cluster.get("deployment", "web", "-n", NAMESPACE)["spec"]["replicas"]
        if rescaled and replicas == 4:
            break
        assert time.monotonic() < deadline, f"the HPA did not rescale web: replicas {replicas}, events {events}"
        time.sleep(2)
    code, out = drift(staging)
    assert code == 0, out


def undo(cluster: kwok.Cluster, staging: Project, summary: str) -> None:
    """What the drift summary says to do: give the fields back to Pulumi, then deploy with --refresh."""
    commands = re.findall(r"^- `(kubectl [^`]+)`$", summary, flags=re.MULTILINE)
    assert commands, summary
    for command in commands:
        cluster.kubectl(*shlex.split(command)[1:])
    assert "- `scripts/stack.sh up staging --refresh`" in summary
    kwok.up(staging, "--refresh")


def egress_rule(cluster: kwok.Cluster, port: int) -> int:
    rules = cluster.get("networkpolicy", "api", "-n", NAMESPACE)["spec"]["egress"]
    return next(i for i, rule in enumerate(rules) if any(p.get("port") == port for p in rule.get("ports", [])))


def test_hand_edits_are_each_reported_and_a_refreshing_deploy_undoes_them(
    cluster: kwok.Cluster, staging: Project
) -> None:
    postgres = egress_rule(cluster, 5432)
    patch = [{"op": "replace", "path": f"/spec/egress/{postgres}/ports/0/port", "value": 5433}]
    edits = [
        (
            ["set", "image", "-n", NAMESPACE, "deployment/api", f"api={HOTFIX}"],
            "| `Deployment support-app/api` (`api-deployment`) | `spec.template.spec.containers[0].image` "
            f"| `{kwok.IMAGE_A}` → `{HOTFIX}` |",
        ),
        (
            ["patch", "networkpolicy", "api", "-n", NAMESPACE, "--type=json", "-p", json.dumps(patch)],
            f"| `NetworkPolicy support-app/api` (`api-networkpolicy`) | `spec.egress[{postgres}].ports[0].port` "
            "| `5432` → `5433` |",
        ),
        (
            ["patch", "secret", "api-secrets", "-n", NAMESPACE, "--type=merge", "-p",
             json.dumps({"stringData": {"LLM_API_KEY": EDITED_KEY}})],
            "| `Secret support-app/api-secrets` (`api-secrets`) | `data.LLM_API_KEY` | secret value changed |",
        ),
    ]  # fmt: skip
    for count, (command, line) in enumerate(edits, 1):
        cluster.kubectl(*command)
        code, out = drift(staging)
        assert code == 1, out
        assert f"drift in {count} resource(s)" in out and line in out, out
    assert EDITED_KEY not in out and TEST_SECRETS["llmApiKey"] not in out
    # Why it matters: a plain preview compares the program with the recorded state and sees nothing (a
    # deploy would leave the edits in place), while the edits took their fields from Pulumi's field
    # manager, so the next update of those objects fails, at preview already.
    assert "api-networkpolicy" not in staging.run("preview", "staging").stdout
    refreshed = staging.run("preview", "staging", "--refresh", check=False)
    assert refreshed.returncode != 0
    assert "Server-Side Apply field conflict" in refreshed.stdout + refreshed.stderr
    undo(cluster, staging, out)
    kwok.wait_available(cluster, "api")
    assert kwok.live_image(cluster, "api") == kwok.IMAGE_A
    assert egress_rule(cluster, 5432) == postgres
    secret = cluster.get("secret", "api-secrets", "-n", NAMESPACE)["data"]["LLM_API_KEY"]
    assert base64.b64decode(secret).decode() == TEST_SECRETS["llmApiKey"]
    code, out = drift(staging)
    assert code == 0, out


def test_known_noise_is_hidden_by_a_reviewed_allowlist_entry(
    cluster: kwok.Cluster, staging: Project, tmp_path: Path
) -> None:
    cluster.kubectl("label", "-n", NAMESPACE, "deployment/api", "--overwrite", "app.kubernetes.io/version=by-hand")
    path = 'metadata.labels["app.kubernetes.io/version"]'
    code, out = drift(staging)
    assert code == 1 and f"| `{path}` | `1.4.0` → `by-hand` |" in out, out
    allowlist = tmp_path / "allowlist.yaml"
    committed = (staging.root / "scripts" / "gate" / "drift-allowlist.yaml").read_text()
    entry = {"type": "kubernetes:apps/v1:Deployment", "path": path, "reason": "a release tool relabels (test)"}
    allowlist.write_text(committed + f"  - {json.dumps(entry)}\n")
    code, out = drift(staging, "--allowlist", str(allowlist))
    assert code == 0 and "1 difference(s) are known noise" in out and "a release tool relabels (test)" in out, out
    code, out = drift(staging)
    undo(cluster, staging, out)
    assert drift(staging)[0] == 0


def test_the_gate_on_real_production_plans(
    tmp_path_factory: pytest.TempPathFactory, engine_bin: Path, cluster: kwok.Cluster
) -> None:
    production = copy_project(tmp_path_factory.mktemp("production"), engine_bin)
    kwok.app_tier_production(production, cluster, namespace="support-prod-gate")

    def set_config(path: str, value: str) -> None:
        production.run("run", "production", "config", "set", "--path", path, value, "--stack", "production")

    try:
        production.run("up", "production")
        set_config("app.defaults.autoscaling.maxReplicas", "12")
        set_config("app.services.api.resources.requests.cpu", "750m")
        # A release's digest (a test value: this plan is only previewed, never deployed).
        release = hashlib.sha256(b"support-platform api 1.5.0, e2e").hexdigest()
        set_config("app.services.api.image", f"ghcr.io/support-platform/api@sha256:{release}")
        blocked = production.script("pr_gate.py", "--stack", "production")
        out = blocked.stdout
        assert blocked.returncode == 1, out[-3000:] + blocked.stderr[-3000:]
        # By hand, production's app tier: api 3-10 x (0.5 CPU, 2 CPU, 1Gi, 2Gi), web 3-10 x (0.05, 0.25,
        # 64Mi, 128Mi), the migration Job 1 x (0.1, 1, 256Mi, 1Gi); after: maxReplicas 12, api 0.75 CPU.
        assert (
            "| CPU requests (cores) | 1.75 → 2.5 (+0.75) | 5.6 → 9.7 (+4.1) |\n"
            "| CPU limits (cores) | 7.75 → 7.75 | 23.5 → 28 (+4.5) |\n"
            "| memory requests | 3520Mi → 3520Mi | 11136Mi → 13Gi (+2176Mi) |\n"
            "| memory limits | 7552Mi → 7552Mi | 22.25Gi → 26.5Gi (+4.25Gi) |\n"
            "| persistent storage | 0 → 0 | 0 → 0 |"
        ) in out
        assert (
            "| `Deployment support-prod-gate/api` | 3-10 → 3-12 | 1.5 → 2.25 (+0.75) at min<br>5 → 9 (+4) at max "
            "| 6 → 6 at min<br>20 → 24 (+4) at max | 3Gi → 3Gi at min<br>10Gi → 12Gi (+2Gi) at max "
            "| 6Gi → 6Gi at min<br>20Gi → 24Gi (+4Gi) at max |  |"
        ) in out
        assert "- CPU requests at the HPA maximum grow by +4.1, over `maxCpuIncrease` (2)" in out
        # A new release replaces the migration Job, which is named after it.
        assert ("- `Job` `api-migration-job`: `metadata.name`, `spec.template.spec.containers[0].image`\n") in out
        allowed = production.script("pr_gate.py", "--stack", "production", "--allow-growth", "planned (e2e)")
        assert allowed.returncode == 0, allowed.stdout[-3000:]
        assert "Allowed by override: planned (e2e)" in allowed.stdout
    finally:
        production.run("destroy", "production", check=False)
