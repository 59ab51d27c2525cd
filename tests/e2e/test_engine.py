"""The real engine on a local file backend: up, preview with the policy pack, gate, rollback, destroy.

Run with `make e2e`; the fixtures (engine, project copy) are in conftest.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.crd_schemas import crds, validation_errors
from tests.e2e.conftest import Project
from tests.harness import TEST_SECRETS, run_program

pytestmark = pytest.mark.engine

KUBERNETES_VERSION = kubernetes_validate.latest_version()


def assert_every_policy_ran(output: str) -> None:
    """A rule that reads a value unknown during preview is skipped with an advisory "can't run"."""
    skipped = [line.strip() for line in output.splitlines() if "can't run policy" in line]
    assert not skipped, "policies skipped during preview:\n" + "\n".join(skipped)


def test_up_on_dev_renders_manifests_that_validate_against_kubernetes(project: Project) -> None:
    result = project.run("up", "dev")
    assert "support-platform-guardrails" in result.stdout, "the policy pack did not run"
    assert_every_policy_ran(result.stdout + result.stderr)
    rendered = project.rendered()
    expected = [r for r in run_program("dev").resources if r.type.startswith("kubernetes:") and r.custom]
    assert len(rendered) == len(expected)
    assert f"rendered {len(rendered)} manifests" in result.stdout
    kinds = set()
    for name, content in rendered.items():
        manifest = yaml.safe_load(content)
        kinds.add(manifest["kind"])
        if (manifest["apiVersion"].rpartition("/")[0], manifest["kind"]) in crds():
            # Custom resources (Gateway API, cert-manager, Envoy Gateway): their published CRDs.
            assert validation_errors(manifest) == [], name
        else:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        assert manifest["metadata"]["name"] in name
    assert {"Namespace", "Deployment", "Service", "NetworkPolicy", "Secret", "ConfigMap", "ServiceAccount"} <= kinds
    assert {"Gateway", "HTTPRoute", "Certificate", "Issuer", "BackendTrafficPolicy"} <= kinds
    assert {"StatefulSet", "CronJob", "Job", "PriorityClass", "PersistentVolumeClaim"} <= kinds
    mode = (project.root / "rendered" / "dev").stat().st_mode
    assert mode & 0o077 == 0, "rendered secrets must be readable by the owner only"


def test_a_second_up_without_changes_changes_nothing(project: Project) -> None:
    project.run("up", "dev")
    first = project.rendered()
    again = project.run("up", "dev")
    assert project.rendered() == first
    updates = project.history("dev")
    assert len(updates) == 2
    changes = updates[-1]["resourceChanges"]
    assert set(changes) == {"same"}, f"a no-op up changed something: {changes}"
    assert "Resources:" in again.stdout and "unchanged" in again.stdout


def test_destroy_on_dev_empties_the_render_directory(project: Project) -> None:
    project.run("up", "dev")
    assert project.rendered()
    project.run("destroy", "dev")
    assert project.rendered() == {}


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_preview_of_cluster_stacks_passes_the_policy_pack_without_a_cluster(project: Project, stack: str) -> None:
    project.set_secrets(stack)
    result = project.run("preview", stack)
    assert "support-platform-guardrails" in result.stdout
    assert_every_policy_ran(result.stdout + result.stderr)
    assert "mandatory" not in result.stdout.lower().split("policies:")[-1] or "0 mandatory" in result.stdout
    assert TEST_SECRETS["llmApiKey"] not in result.stdout + result.stderr


def test_a_config_that_breaks_a_rule_fails_preview_with_the_policy_message(project: Project) -> None:
    project.set_secrets("staging")

    def drop_cpu_limit(app: dict[str, Any]) -> dict[str, Any]:
        app["services"]["api"]["resources"] = {"limits": {"cpu": None}}
        return app

    project.edit_stack("staging", "app", drop_cpu_limit)
    result = project.run("preview", "staging", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "container-resources" in output
    assert "limits.cpu" in output and "Fix:" in output


def test_staging_refuses_to_run_without_its_passphrase(project: Project) -> None:
    env = dict(project.env)
    env.pop("PULUMI_CONFIG_PASSPHRASE")
    proc = project.execute([str(project.root / "scripts" / "stack.sh"), "preview", "staging"], env=env)
    assert proc.returncode == 1
    assert "needs its secrets passphrase" in proc.stderr


def test_rollback_drill_restores_the_first_update_byte_for_byte(project: Project) -> None:
    def api_image(tag: str):  # type: ignore[no-untyped-def]
        def update(app: dict[str, Any]) -> dict[str, Any]:
            app["services"]["api"]["image"] = f"ghcr.io/support-platform/api:{tag}"
            return app

        return update

    project.run("up", "dev")
    first = project.rendered()
    project.edit_stack("dev", "app", api_image("1.5.0"))
    project.run("up", "dev")
    second = project.rendered()
    assert second != first

    rollback = project.script("rollback.py", "--stack", "dev", "--to", "1", "--yes")
    assert rollback.returncode == 0, rollback.stdout[-4000:] + rollback.stderr[-4000:]
    assert project.rendered() == first

    updates = project.history("dev")
    assert [u["version"] for u in updates] == [1, 2, 3]
    assert all(u["result"] == "succeeded" for u in updates)
    assert updates[-1]["message"] == "rollback to version 1 (from version 2)"
    changes = updates[-1]["resourceChanges"]
    # One replacement: the api's migration Job, named after the release it migrates to; nothing else.
    assert changes.get("replace") == 1 and not changes.get("delete"), changes
    assert "1.4.0" in (project.root / "Pulumi.dev.yaml").read_text()
    # What a person sees: the CLI's own history (newest first) names the rollback, and the
    # rollback listing numbers the updates the way the drill did.
    human = project.run("history", "dev").stdout
    messages = [line for line in human.splitlines() if line.startswith("Message: ")]
    assert messages[0] == "Message: rollback to version 1 (from version 2)", messages
    listing = project.script("rollback.py", "--stack", "dev").stdout.splitlines()
    assert [line.split()[0] for line in listing[1:]] == ["1", "2", "3"]
    assert "rollback to version 1" in listing[3]


def test_rollback_refuses_a_failed_update(project: Project) -> None:
    project.run("up", "dev")

    def break_replicas(app: dict[str, Any]) -> dict[str, Any]:
        app["defaults"]["replicas"] = 0
        return app

    project.edit_stack("dev", "app", break_replicas)
    # Without a preview the failure happens in the update itself, which history records; a failure
    # in up's preview stops before any update exists.
    failed = project.run("up", "dev", "--skip-preview", check=False)
    assert failed.returncode != 0
    assert "support-platform:app.defaults.replicas" in failed.stdout + failed.stderr

    listing = project.script("rollback.py", "--stack", "dev")
    assert listing.returncode == 0 and "failed" in listing.stdout
    refused = project.script("rollback.py", "--stack", "dev", "--to", "2", "--yes")
    assert refused.returncode == 2
    assert "version 2 failed" in refused.stderr


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_gate_passes_a_real_plan_of_a_cluster_stack(project: Project, tmp_path: Path, stack: str) -> None:
    project.set_secrets(stack)
    summary = tmp_path / "gate.md"
    # A fresh backend: the stack's first deploy, declared (test_gate_engine.py: refused otherwise).
    gate = project.script("pr_gate.py", "--stack", stack, "--summary", str(summary), "--first-deploy", "e2e")
    assert gate.returncode == 0, gate.stdout + gate.stderr
    text = summary.read_text()
    assert f"`{stack}`: gate passed" in text
    # api, web, Grafana and kube-state-metrics (and production's PgBouncer, data.postgres.pooler);
    # Prometheus, Alertmanager, PostgreSQL, Redis and Chroma.
    deployments = 5 if stack == "production" else 4
    assert f"| `kubernetes:apps/v1:Deployment` | {deployments} |" in text
    assert "| `kubernetes:apps/v1:StatefulSet` | 5 |" in text
    assert "**Policies**: 0 mandatory and 0 advisory finding(s)." in text
    assert "can't run" not in text


def test_gate_blocks_a_plan_that_replaces_data_unless_overridden(project: Project) -> None:
    project.run("up", "dev")

    def rename(namespaces: dict[str, Any] | None) -> dict[str, Any]:
        return {"app": "support-app-renamed"}

    project.edit_stack("dev", "namespaces", rename)
    blocked = project.script("pr_gate.py", "--stack", "dev")
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "gate blocked" in blocked.stdout
    assert "Namespace `app-namespace`" in blocked.stdout
    assert "Secret holding data `api-secrets`" in blocked.stdout

    allowed = project.script("pr_gate.py", "--stack", "dev", "--allow-destructive", "planned namespace move")
    assert allowed.returncode == 0
    assert "Allowed by override: planned namespace move" in allowed.stdout
