"""The gate's summary: a reason for every replace, a size that always fits, and no green gate on
nothing (a shared stack previewed without its backend or without prior state)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts import pr_gate
from scripts.gate import budget
from tests.plan_fixtures import container, deployment, hpa, statefulset, step

API = deployment(
    "api", "support-app", container("api", {"cpu": "500m", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"})
)


def test_every_replace_names_the_property_that_forces_it() -> None:
    old_sts = statefulset("postgres", "support-data", 1, "20Gi", container("postgres", {"cpu": "1"}, {"cpu": "1"}))
    plan = {
        "steps": [
            step("replace", "apps/v1:StatefulSet", "postgres-statefulset", old_sts, old_sts,
                 replaceReasons=["spec"],
                 detailedDiff={
                     'spec.selector.matchLabels["app.kubernetes.io/name"]': {"kind": "update-replace"},
                     "spec.volumeClaimTemplates[0].spec.resources.requests.storage": {"kind": "update-replace"},
                     "spec.template.spec.containers[0].image": {"kind": "update"},
                 }),
            step("replace", "core/v1:ConfigMap", "api-env", {"data": {}}, {"data": {}},
                 replaceReasons=["metadata.namespace"],
                 detailedDiff={"metadata.namespace": {"kind": "update-replace"}}),
            # No detailed diff: the engine's top-level keys are the reason.
            step("replace", "batch/v1:Job", "api-migration-job", {}, {}, replaceReasons=["spec"]),
            step("replace", "core/v1:Service", "api-service", {}, {}),
        ]
    }  # fmt: skip
    result = pr_gate.evaluate("production", plan, [], preview_ok=True, override=None)
    summary = pr_gate.render_summary(result)
    replacements = summary.split("**Replacements**", 1)[1]
    assert (
        '- `StatefulSet` `postgres-statefulset`: `spec.selector.matchLabels["app.kubernetes.io/name"]`, '
        "`spec.volumeClaimTemplates[0].spec.resources.requests.storage`\n" in replacements
    )
    assert "- `ConfigMap` `api-env`: `metadata.namespace`\n" in replacements
    assert "- `Job` `api-migration-job`: `spec`\n" in replacements
    assert "- `Service` `api-service`: no property named" in replacements
    # The one that loses data is blocked, with the same reason.
    assert "- `replace` StatefulSet `postgres-statefulset` (because of `spec.selector" in summary
    assert "containers[0].image" not in replacements.split("\n\n")[0]


def synthetic_preview(steps: int, risks: int) -> dict[str, Any]:
    """A big plan: `risks` StatefulSets replaced, then replaced ConfigMaps, updated Deployments
    (with HPAs), created Services and unchanged resources in roughly 1:2:2:5 parts."""
    plan: list[dict[str, Any]] = []
    for i in range(risks):
        sts = statefulset(
            f"store-{i}", "data", 1, "10Gi", container("db", {"cpu": "250m", "memory": "1Gi"}, {"memory": "2Gi"})
        )
        plan.append(step("replace", "apps/v1:StatefulSet", f"store-{i}-statefulset", sts, sts,
                         detailedDiff={"spec.volumeClaimTemplates": {"kind": "update-replace"}}))  # fmt: skip
    rest = steps - risks
    for i in range(rest // 10):
        plan.append(step("replace", "core/v1:ConfigMap", f"settings-{i}", {"data": {}}, {"data": {}},
                         detailedDiff={'data["settings.yaml"]': {"kind": "update-replace"}}))  # fmt: skip
    for i in range(rest // 10):
        old = deployment(
            f"svc-{i}", "app", container("c", {"cpu": "100m", "memory": "128Mi"}, {"cpu": "1", "memory": "256Mi"})
        )
        new = deployment(
            f"svc-{i}", "app", container("c", {"cpu": "200m", "memory": "128Mi"}, {"cpu": "1", "memory": "256Mi"})
        )
        cpu = {"spec.template.spec.containers[0].resources.requests.cpu": {"kind": "update"}}
        plan.append(step("update", "apps/v1:Deployment", f"svc-{i}-deployment", old, new, detailedDiff=cpu))
        autoscaler = hpa(f"svc-{i}", "app", 2, 4)
        plan.append(step("same", "autoscaling/v2:HorizontalPodAutoscaler", f"svc-{i}-hpa", autoscaler, autoscaler))
    for i in range(rest // 5):
        plan.append(step("create", "core/v1:Service", f"svc-{i}-service", None, {"metadata": {"name": f"svc-{i}"}}))
    while len(plan) < steps:
        plan.append(step("same", "core/v1:ServiceAccount", f"account-{len(plan)}", {}, {}))
    return {"steps": plan, "changeSummary": {}}


def test_a_5000_step_preview_fits_with_risks_and_totals_first_and_whole() -> None:
    digest = synthetic_preview(5000, risks=25)
    assert len(digest["steps"]) == 5000
    result = pr_gate.evaluate("production", digest, [], preview_ok=True, override=None, growth_limits={})
    full = pr_gate.render_summary(result, limit=None)
    summary = pr_gate.render_summary(result)
    assert len(full) > 3 * budget.LIMIT  # the plan does not fit as a whole
    assert len(summary) <= budget.LIMIT
    # Every stateful risk is listed, before anything that can be cut.
    risks = summary.split("**Data at risk**", 1)[1].split("\n\n", 1)[0]
    assert all(
        f"StatefulSet `store-{i}-statefulset` (because of `spec.volumeClaimTemplates`)" in risks for i in range(25)
    )
    assert summary.index("**Data at risk**") < summary.index("| resource type |") < summary.index("**Capacity**")
    assert summary.index("**Capacity**") < summary.index("**Replacements**")
    # The totals whole: change counts and capacity (497 Deployments 0.1 -> 0.2 CPU at 2-4 replicas).
    assert "| `kubernetes:apps/v1:Deployment` |  | 497 |  |  |" in summary
    assert "| **total** | 995 | 497 | 522 |  |" in summary
    assert "| CPU requests (cores) | 105.65 → 205.05 (+99.4) | 205.05 → 403.85 (+198.8) |" in summary
    # What did not fit is counted, never silently dropped, and the unchanged are counted at the end.
    for section, total in (("**Replacements**", 522), ("**Other changes**", 1492)):
        text = summary.split(section, 1)[1].split("\n**", 1)[0]
        listed = text.count("\n- `")
        if listed < total:
            assert f"… and {total - listed} more " in text, section
    unchanged = sum(1 for s in digest["steps"] if s["op"] == "same")
    assert summary.rstrip().endswith(f"… and {unchanged} more unchanged.")


def test_risks_longer_than_a_comment_are_counted_not_cut_mid_line() -> None:
    digest = synthetic_preview(3000, risks=3000)
    result = pr_gate.evaluate("production", digest, [], preview_ok=True, override=None)
    summary = pr_gate.render_summary(result)
    assert len(summary) <= budget.LIMIT
    assert "more resources at risk not shown here" in summary and "gate blocked" in summary
    assert "(summary cut at the comment limit)" not in summary


def test_the_budget_keeps_what_it_must_and_counts_what_it_folds() -> None:
    sections = [
        budget.Section("**kept**", items=[f"- kept {i}" for i in range(30)], keep=True),
        budget.Section("**cut**", items=[f"- item {i:04d} " + "x" * 50 for i in range(1000)], more="items"),
    ]
    text = budget.render(sections, limit=5000)
    assert len(text) <= 5000
    assert all(f"- kept {i}\n" in text for i in range(30))
    shown = text.count("- item ")
    assert 40 < shown < 1000
    assert f"… and {1000 - shown} more items not shown here" in text
    assert "<details><summary>" in text  # beyond the first ten, folded


def test_a_shared_stack_with_no_prior_state_is_refused_unless_a_first_deploy_is_declared() -> None:
    first = {"steps": [step("create", "pulumi:pulumi:Stack", "support-platform-production", None, {}),
                       step("create", "apps/v1:Deployment", "api-deployment", None, API)]}  # fmt: skip
    refused = pr_gate.evaluate("production", first, [], preview_ok=True, override=None)
    assert not refused.passed and refused.refused_empty
    summary = pr_gate.render_summary(refused)
    assert "**Nothing to compare against**: `production` has no prior state in this backend" in summary
    assert "`first-deploy` label" in summary
    declared = pr_gate.evaluate("production", first, [], preview_ok=True, override=None, first_deploy="new cluster")
    assert declared.passed
    assert "🆕 **First deploy** of `production`, declared: new cluster." in pr_gate.render_summary(declared)
    # dev renders to a directory: a fresh dev stack is nothing to refuse.
    assert pr_gate.evaluate("dev", first, [], preview_ok=True, override=None).passed


def test_a_first_deploy_declared_on_a_deployed_stack_changes_nothing() -> None:
    grown = deployment(
        "api", "support-app", container("api", {"cpu": "4", "memory": "1Gi"}, {"cpu": "4", "memory": "2Gi"})
    )
    plan = {"steps": [step("update", "apps/v1:Deployment", "api-deployment", API, grown)]}
    result = pr_gate.evaluate(
        "production", plan, [], preview_ok=True, override=None, first_deploy="oops",
        growth_limits={"maxCpuIncrease": pr_gate.settings.quantity.parse("2")},
    )  # fmt: skip
    assert not result.passed and [g.setting for g in result.growth] == ["maxCpuIncrease"]
    summary = pr_gate.render_summary(result)
    assert "has prior state: the declaration changes nothing" in summary
    assert "`--allow-growth REASON`" in summary
    allowed = pr_gate.evaluate(
        "production", plan, [], preview_ok=True, override=None, allow_growth="capacity planned in OPS-12",
        growth_limits={"maxCpuIncrease": pr_gate.settings.quantity.parse("2")},
    )  # fmt: skip
    assert allowed.passed and "Allowed by override: capacity planned in OPS-12" in pr_gate.render_summary(allowed)


def test_without_a_team_backend_the_gate_refuses_before_previewing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)

    def no_preview(stack: str) -> Any:
        raise AssertionError("previewed against a private backend")

    monkeypatch.setattr(pr_gate, "run_preview", no_preview)
    summary = tmp_path / "gate.md"
    assert pr_gate.main(["--stack", "staging", "--summary", str(summary)]) == 1
    text = summary.read_text()
    assert "gate blocked" in text and "PULUMI_BACKEND_URL is not set" in text
    assert "`staging-preview` environment" in text


def test_a_declared_first_deploy_previews_even_without_a_backend_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    creates = {"steps": [step("create", "apps/v1:Deployment", "api-deployment", None, API)]}
    monkeypatch.setattr(pr_gate, "run_preview", lambda stack: (creates, [], True, []))
    summary = tmp_path / "gate.md"
    assert pr_gate.main(["--stack", "production", "--summary", str(summary), "--first-deploy", "launch"]) == 0
    text = summary.read_text()
    assert "**First deploy** of `production`, declared: launch" in text
    assert "with no team backend configured" in text
    assert "| CPU requests (cores) | 0 → 0.5 (+0.5) | 0 → 0.5 (+0.5) |" in text


def test_the_summary_file_is_fitted_and_the_log_gets_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "preview.json"
    plan.write_text(json.dumps(synthetic_preview(2000, risks=2)))
    summary = tmp_path / "gate.md"
    code = pr_gate.main(
        ["--stack", "dev", "--preview-json", str(plan), "--summary", str(summary), "--max-chars", "8000"]
    )
    assert code == 1  # two StatefulSets replaced
    assert len(summary.read_text()) <= 8000
    assert "not shown here (the full list is in the job log)" in summary.read_text()
    logged = capsys.readouterr().out
    assert "not shown here" not in logged and logged.count("- `create` `Service`") == 399
