"""The pull-request gate on real plans of the real engine (render mode and fresh backends): the
reason for each forced replacement, the capacity delta, the stack file's diff with real secrets, and
the refusal of a shared stack previewed against nothing.

`make e2e`; the fixtures (engine, project copy) are in conftest.py. Production plans with prior
state need a cluster: tests/e2e/test_drift_cluster.py has those.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scripts.gate import quantity
from tests.e2e.conftest import Project
from tests.harness import TEST_SECRETS

pytestmark = pytest.mark.engine


def gate(project: Project, stack: str, *args: str) -> tuple[int, str]:
    proc = project.script("pr_gate.py", "--stack", stack, *args)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.returncode, proc.stdout


def section(summary: str, heading: str) -> str:
    return summary.split(heading, 1)[1].split("\n**", 1)[0]


def set_dev(project: Project, key: str, update: Any) -> None:
    project.edit_stack("dev", key, update)


def test_a_never_deployed_production_is_refused_unless_the_first_deploy_is_declared(
    project: Project, tmp_path: Path
) -> None:
    project.set_secrets("production")
    code, out = gate(project, "production")
    assert code == 1
    assert "**Nothing to compare against**: `production` has no prior state in this backend" in out
    summary = tmp_path / "gate.md"
    code, out = gate(
        project, "production", "--first-deploy", "launch of the production cluster", "--summary", str(summary)
    )
    assert code == 0, out[-3000:]
    text = summary.read_text()
    assert "🆕 **First deploy** of `production`, declared: launch of the production cluster." in text
    # From nothing to the api's 3-10 replicas of 0.5 CPU, 2 CPU, 1Gi, 2Gi (Pulumi.production.yaml).
    assert (
        "| `Deployment support-app/api` | — → 3-10 | 0 → 1.5 (+1.5) at min<br>0 → 5 (+5) at max "
        "| 0 → 6 (+6) at min<br>0 → 20 (+20) at max | 0 → 3Gi (+3Gi) at min<br>0 → 10Gi (+10Gi) at max "
        "| 0 → 6Gi (+6Gi) at min<br>0 → 20Gi (+20Gi) at max |  |"
    ) in text


def test_without_a_team_backend_production_is_refused_before_any_preview(project: Project) -> None:
    env = {k: v for k, v in project.env.items() if k != "PULUMI_BACKEND_URL"}
    proc = project.execute([*_python(project), "--stack", "production"], env=env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "PULUMI_BACKEND_URL is not set" in proc.stdout
    assert not (project.root / ".pulumi-state").exists(), "a private backend was created: something previewed"


def _python(project: Project) -> list[str]:
    return [str(project.root / "venv" / "bin" / "python"), str(project.root / "scripts" / "pr_gate.py")]


def test_every_forced_replacement_names_its_property_on_real_plans(project: Project) -> None:
    project.run("up", "dev")

    def new_image(app: dict[str, Any]) -> dict[str, Any]:
        app["services"]["api"]["image"] = "ghcr.io/support-platform/api:1.5.0"
        return app

    set_dev(project, "app", new_image)
    set_dev(project, "namespaces", lambda _: {"app": "support-app-moved"})
    code, out = gate(project, "dev")
    assert code == 1  # the namespace and the Secret holding data
    replacements = section(out, "**Replacements**")
    # A Job's pod template cannot change; the migration Job is named after the release it runs.
    job = "`metadata.name`, `metadata.namespace`, `spec.template.spec.containers[0].image`"
    assert f"- `Job` `api-migration-job`: {job}\n" in replacements
    assert "- `Namespace` `app-namespace`: `metadata.name`\n" in replacements
    assert "- `Deployment` `api-deployment`: `metadata.namespace`\n" in replacements
    assert "- `Secret` `api-secrets`: `metadata.namespace`\n" in replacements
    listed = replacements.count("\n- `")
    table = re.search(r"\| \*\*total\*\* \|[^|]*\|[^|]*\| (\d+) \|", out)
    assert table and listed == int(table.group(1)), "one line per replacement, each with a reason"
    assert "no property named" not in replacements
    risk = section(out, "**Data at risk**")
    assert "- `replace` Namespace `app-namespace` (because of `metadata.name`)" in risk


def test_the_capacity_delta_of_a_real_plan_is_the_hand_computed_one(project: Project) -> None:
    project.run("up", "dev")

    def scale(app: dict[str, Any]) -> dict[str, Any]:
        app["defaults"]["replicas"] = 2
        app["services"]["api"]["resources"]["requests"]["cpu"] = "300m"
        return app

    set_dev(project, "app", scale)
    code, out = gate(project, "dev")
    assert code == 0, out[-3000:]
    rows = section(out, "**Capacity per workload**")
    # api 1 x (0.1 CPU, 0.5 CPU, 256Mi, 512Mi) -> 2 x (0.3, 0.5, 256Mi, 512Mi); web 1 -> 2 x (0.025, 0.1, 32Mi, 64Mi)
    assert (
        "| `Deployment support-app/api` | 1 → 2 | 0.1 → 0.6 (+0.5) | 0.5 → 1 (+0.5) | 256Mi → 512Mi (+256Mi) "
        "| 512Mi → 1Gi (+512Mi) |  |"
    ) in rows
    assert (
        "| `Deployment support-app/web` | 1 → 2 | 0.025 → 0.05 (+0.025) | 0.1 → 0.2 (+0.1) | 32Mi → 64Mi (+32Mi) "
        "| 64Mi → 128Mi (+64Mi) |  |"
    ) in rows
    assert rows.count("\n| `") == 2, "only the workloads that change"
    totals = section(out, "**Capacity**")
    for label, delta, unit in (
        ("CPU requests (cores)", "0.525", quantity.cpu),
        ("CPU limits (cores)", "0.6", quantity.cpu),
        ("memory requests", "288Mi", quantity.memory),
        ("memory limits", "576Mi", quantity.memory),
    ):
        row = re.search(rf"\| {re.escape(label)} \| (\S+) → (\S+) \(\+(\S+)\) \|", totals)
        assert row, (label, totals)
        before, after, shown = row.groups()
        assert shown == delta and quantity.parse(after) - quantity.parse(before) == quantity.parse(delta)
        assert unit(quantity.parse(after)) == after


def test_the_stack_file_diff_compares_secrets_without_showing_them(project: Project) -> None:
    project.set_secrets("staging")
    author = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], [*author, "commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(project.root), *args], check=True, capture_output=True)  # noqa: S607

    def set_secret(key: str, value: str) -> None:
        project.run("run", "staging", "config", "set", "--secret", key, "--stack", "staging", stdin=value)

    # Set again to the same value (new ciphertext), and to a new value; one plain setting changes.
    set_secret("llmApiKey", TEST_SECRETS["llmApiKey"])
    rotated = "https://hooks.example.test/services/T0000/B0000/rotated0f1e2d3c4b5a"
    set_secret("alertWebhookUrl", rotated)
    project.run("run", "staging", "config", "set", "--path", "app.defaults.replicas", "3", "--stack", "staging")
    code, out = gate(project, "staging", "--base-ref", "HEAD", "--first-deploy", "e2e")
    assert code == 0, out[-3000:]
    config = section(out, "**Stack configuration**")
    assert "- `alertWebhookUrl`: secret changed\n" in config
    assert "- `llmApiKey`: secret unchanged (set again, same value)\n" in config
    assert "- `app.defaults.replicas`: `2` → `3`" in config
    assert rotated not in out and TEST_SECRETS["llmApiKey"] not in out and "v1:" not in config
