"""The drift check on refresh plans shaped like `pulumi refresh --preview-only --json` of CLI
v3.259.0 (op `refresh` with the recorded and the read-back state and a detailedDiff; op `delete`
for what the cluster no longer has), as observed on the throwaway control plane."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts import drift
from scripts.gate import drift_report
from scripts.gate.plan import SECRET
from tests.plan_fixtures import container, deployment, hpa, step

IMAGE_DIFF = {"spec.template.spec.containers[0].image": {"kind": "update", "inputDiff": False}}


def api(image: str, replicas: int = 3) -> dict[str, Any]:
    spec = deployment("api", "support-app", container("api", {"cpu": "500m"}, {"cpu": "2"}))
    spec["spec"]["template"]["spec"]["containers"][0]["image"] = image
    spec["spec"]["replicas"] = replicas
    return spec


def refresh(*steps: dict[str, Any]) -> dict[str, Any]:
    stack = step("refresh", "pulumi:pulumi:Stack", "support-platform-production", {}, {})
    return {"steps": [stack, *steps], "changeSummary": {}}


ALLOWLIST = drift_report.load_allowlist()


def test_a_clean_refresh_reports_nothing() -> None:
    plan = refresh(step("refresh", "apps/v1:Deployment", "api-deployment", api("api:1"), api("api:1")))
    assert drift_report.differences(plan, ALLOWLIST) == []
    assert drift_report.render("production", [], [], 60_000).startswith("### ✅ `production`: no drift")


def test_an_edited_image_is_reported_with_resource_property_and_values() -> None:
    plan = refresh(
        step("refresh", "apps/v1:Deployment", "api-deployment", api("api:1.4.0"), api("api:9.9.9-hotfix"),
             detailedDiff=IMAGE_DIFF),
    )  # fmt: skip
    (found,) = drift_report.differences(plan, ALLOWLIST)
    assert found.render() == (
        "| `Deployment support-app/api` (`api-deployment`) | `spec.template.spec.containers[0].image` "
        "| `api:1.4.0` → `api:9.9.9-hotfix` |"
    )
    # How to undo it: the hand edit owns the field now; give it back, then deploy with --refresh.
    text = drift_report.render("production", [found], [], 60_000)
    assert (
        "- `kubectl --namespace support-app patch Deployment.v1.apps api --type=merge "
        """-p '{"metadata":{"managedFields":[{}]}}'`"""
    ) in text
    assert "- `scripts/stack.sh up production --refresh`" in text


def test_a_secret_is_named_but_its_values_never_shown() -> None:
    old = {"kind": "Secret", "metadata": {"name": "api-secrets", "namespace": "support-app"}, "data": SECRET}
    plan = refresh(
        step("refresh", "core/v1:Secret", "api-secrets", old, old,
             detailedDiff={"data.LLM_API_KEY": {"kind": "update-replace", "inputDiff": False}}),
        # A secret the engine did not mask is still never printed: Secrets are secret by type.
        step("refresh", "core/v1:Secret", "tls", {**old, "data": {"tls.key": "AAAA"}},
             {**old, "data": {"tls.key": "BBBB"}}, detailedDiff={'data["tls.key"]': {"kind": "update"}}),
    )  # fmt: skip
    found = drift_report.differences(plan, ALLOWLIST)
    assert [(d.path, d.secret) for d in found] == [("data.LLM_API_KEY", True), ('data["tls.key"]', True)]
    text = drift_report.render("production", found, [], 60_000)
    assert "secret value changed" in text and "AAAA" not in text and "BBBB" not in text


def test_a_resource_deleted_by_hand_is_reported() -> None:
    pdb = {"kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "support-app"}}
    (found,) = drift_report.differences(
        refresh(step("delete", "policy/v1:PodDisruptionBudget", "web-pdb", pdb)), ALLOWLIST
    )
    assert found.render() == "| `PodDisruptionBudget support-app/web` (`web-pdb`) | deleted outside Pulumi | |"


def test_replicas_are_noise_only_on_a_workload_the_hpa_scales() -> None:
    replicas = {"spec.replicas": {"kind": "update", "inputDiff": False}}
    worker = deployment("worker", "support-app", container("worker", {"cpu": "1"}, {"cpu": "1"}), replicas=1)
    scaled_worker = deployment("worker", "support-app", container("worker", {"cpu": "1"}, {"cpu": "1"}), replicas=4)
    autoscaler = hpa("api", "support-app", 3, 10)
    plan = refresh(
        step("refresh", "autoscaling/v2:HorizontalPodAutoscaler", "api-hpa", autoscaler, autoscaler),
        step("refresh", "apps/v1:Deployment", "api-deployment", api("a:1", 3), api("a:1", 7), detailedDiff=replicas),
        step("refresh", "apps/v1:Deployment", "worker-deployment", worker, scaled_worker, detailedDiff=replicas),
    )
    found = drift_report.differences(plan, ALLOWLIST)
    assert [(d.urn_name, d.allowed_by is not None) for d in found] == [
        ("api-deployment", True),
        ("worker-deployment", False),  # no HPA: someone scaled it by hand
    ]
    text = drift_report.render("production", found, [], 60_000)
    assert "drift in 1 resource(s)" in text
    assert "1 difference(s) are known noise" in text and "the HorizontalPodAutoscaler owns replicas" in text


def test_without_a_detailed_diff_outputs_are_compared_and_server_noise_filtered() -> None:
    old = {
        "kind": "Service",
        "metadata": {"name": "api", "namespace": "a", "resourceVersion": "1"},
        "spec": {"ports": [{"port": 80}]},
    }
    new = {
        "kind": "Service",
        "metadata": {"name": "api", "namespace": "a", "resourceVersion": "9", "managedFields": [{"manager": "x"}]},
        "spec": {"ports": [{"port": 81}], "clusterIP": "10.0.0.7"},
        "status": {"loadBalancer": {}},
        "__inputs": {"ignored": True},
    }
    found = drift_report.differences(refresh(step("refresh", "core/v1:Service", "api-service", old, new)), ALLOWLIST)
    assert sorted((d.path, d.allowed_by is None) for d in found) == [
        ("metadata.managedFields", False),
        ("metadata.resourceVersion", False),
        ("spec.clusterIP", False),
        ("spec.ports[0].port", True),
        ("status", False),
    ]


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("spec.replicas", "spec.replicas", True),
        ("spec.replicas", "spec.replicasX", False),
        ("status**", "status.conditions[0].type", True),
        ("spec.template.spec.containers[*].image", "spec.template.spec.containers[3].image", True),
        ("spec.*.image", "spec.template.spec.image", False),  # * stays within one segment
        (
            'metadata.annotations["pv.kubernetes.io/*"]',
            'metadata.annotations["pv.kubernetes.io/bound-by-controller"]',
            True,
        ),
        ('metadata.annotations["pv.kubernetes.io/*"]', 'metadata.annotations["example.com/x"]', False),
    ],
)
def test_allowlist_paths_match_by_segment(pattern: str, path: str, matches: bool) -> None:
    entry = drift_report.Entry("kubernetes:*", pattern, "why")
    assert entry.matches("kubernetes:core/v1:Service", path, hpa_target=False) is matches


def test_an_allowlist_entry_must_say_why(tmp_path: Path) -> None:
    path = tmp_path / "allow.yaml"
    path.write_text(
        'entries:\n  - {type: "kubernetes:*", path: status}\n  - {type: x, path: y, reason: z, owner: me}\n'
    )
    with pytest.raises(drift_report.AllowlistError) as error:
        drift_report.load_allowlist(path)
    assert "entries[0]: needs reason (every entry says why it is noise)" in str(error.value)
    assert "entries[1]: unknown field(s) owner" in str(error.value)


def test_the_command_exits_by_what_it_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = tmp_path / "refresh.json"
    summary = tmp_path / "drift.md"
    clean = refresh(step("refresh", "apps/v1:Deployment", "api-deployment", api("api:1"), api("api:1")))
    plan.write_text(json.dumps(clean))
    assert drift.main(["--stack", "production", "--refresh-json", str(plan), "--summary", str(summary)]) == 0
    edited = step("refresh", "apps/v1:Deployment", "api-deployment", api("a:1"), api("a:2"), detailedDiff=IMAGE_DIFF)
    plan.write_text(json.dumps(refresh(edited)))
    assert drift.main(["--stack", "production", "--refresh-json", str(plan), "--summary", str(summary)]) == 1
    assert summary.read_text().count("### ") == 2
    # Nothing deployed in this backend: not "no drift" but an error.
    plan.write_text(json.dumps(refresh()))
    assert drift.main(["--stack", "production", "--refresh-json", str(plan)]) == 2
    # No team backend: refused before reading anything.
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    monkeypatch.setattr(drift, "run_refresh", lambda stack: pytest.fail("refreshed against a private backend"))
    assert drift.main(["--stack", "production", "--summary", str(summary)]) == 2
    assert "PULUMI_BACKEND_URL is not set" in summary.read_text()


def test_the_committed_allowlist_loads_and_every_entry_has_a_reason() -> None:
    assert ALLOWLIST and all(len(e.reason) > 20 for e in ALLOWLIST)
