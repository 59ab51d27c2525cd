"""The real engine on a local file backend: up, preview with the policy pack, gate, rollback, destroy.

Each test works on a copy of the project in a temporary directory (its own state, its own
rendered/dev), with the pinned engine from scripts/engine/ensure-engine.sh. Run with `make e2e`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.harness import TEST_SECRETS, run_program

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.production.yaml", "__main__.py")
PROJECT_DIRS = ("components", "policies", "scripts")
KUBERNETES_VERSION = kubernetes_validate.latest_version()
PASSPHRASE = "e2e-test-passphrase"


@pytest.fixture(scope="session")
def engine_bin() -> Path:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "engine" / "ensure-engine.sh")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"engine build failed:\n{proc.stderr[-4000:]}"
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass
class Project:
    root: Path
    env: dict[str, str]

    def execute(
        self, command: list[str], stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=self.root,
            env=self.env if env is None else env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = self.execute([str(self.root / "scripts" / "stack.sh"), *args], stdin)
        if check:
            output = f"{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}"
            assert proc.returncode == 0, f"stack.sh {' '.join(args)} failed:\n{output}"
        return proc

    def script(self, name: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.execute([sys.executable, str(self.root / "scripts" / name), *args], stdin)

    def edit_stack(self, stack: str, key: str, update: Any) -> None:
        path = self.root / f"Pulumi.{stack}.yaml"
        document = yaml.safe_load(path.read_text())
        full = f"support-platform:{key}"
        document["config"][full] = update(document["config"].get(full))
        path.write_text(yaml.safe_dump(document, sort_keys=False))

    def set_secrets(self, stack: str) -> None:
        for key in ("llmApiKey", "alertWebhookUrl"):
            self.run("run", stack, "config", "set", "--secret", key, "--stack", stack, stdin=TEST_SECRETS[key])

    def rendered(self) -> dict[str, bytes]:
        base = self.root / "rendered" / "dev"
        return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*.yaml"))}

    def history(self, stack: str) -> list[dict[str, Any]]:
        out = self.run("run", stack, "stack", "history", "--json", "--stack", stack).stdout
        updates: list[dict[str, Any]] = json.loads(out)
        return sorted(updates, key=lambda u: int(u["version"]))


@pytest.fixture
def project(tmp_path: Path, engine_bin: Path) -> Iterator[Project]:
    root = tmp_path / "project"
    root.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, root / name)
    for name in PROJECT_DIRS:
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("venv", "__pycache__"), symlinks=True)
    # The program and the policy pack run in the project's own virtualenv.
    (root / "venv").symlink_to(ROOT / "venv")
    if (ROOT / "policies" / "venv").exists():
        (root / "policies" / "venv").symlink_to(ROOT / "policies" / "venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env.pop("KUBECONFIG", None)
    env.update(
        PATH=f"{engine_bin}{os.pathsep}{env.get('PATH', '')}",
        PULUMI_BACKEND_URL=f"file://{tmp_path / 'state'}",
        PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
        # Previews of cluster stacks must not find a real cluster through an ambient kubeconfig.
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
    )
    if "PULUMI_HOME" in os.environ:
        env["PULUMI_HOME"] = os.environ["PULUMI_HOME"]
    (tmp_path / "state").mkdir()
    yield Project(root, env)


def test_up_on_dev_renders_manifests_that_validate_against_kubernetes(project: Project) -> None:
    result = project.run("up", "dev")
    assert "support-platform-guardrails" in result.stdout, "the policy pack did not run"
    rendered = project.rendered()
    expected = [r for r in run_program("dev").resources if r.type.startswith("kubernetes:") and r.custom]
    assert len(rendered) == len(expected)
    assert f"rendered {len(rendered)} manifests" in result.stdout
    kinds = set()
    for name, content in rendered.items():
        manifest = yaml.safe_load(content)
        kinds.add(manifest["kind"])
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        assert manifest["metadata"]["name"] in name
    assert {"Namespace", "Deployment", "Service", "NetworkPolicy", "Secret", "ConfigMap", "ServiceAccount"} <= kinds
    mode = (project.root / "rendered" / "dev").stat().st_mode
    assert mode & 0o077 == 0, "rendered secrets must be readable by the owner only"


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
    assert updates[-1]["message"].startswith("rollback to version 1")
    changes = updates[-1]["resourceChanges"]
    assert not changes.get("replace") and not changes.get("delete"), changes
    assert "1.4.0" in (project.root / "Pulumi.dev.yaml").read_text()


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


def test_gate_summarises_a_fresh_plan_and_passes(project: Project, tmp_path: Path) -> None:
    project.set_secrets("staging")
    summary = tmp_path / "gate.md"
    gate = project.script("pr_gate.py", "--stack", "staging", "--summary", str(summary))
    assert gate.returncode == 0, gate.stdout + gate.stderr
    text = summary.read_text()
    assert "gate passed" in text
    assert "| `kubernetes:apps/v1:Deployment` | 2 |" in text
    assert "0 mandatory" in text


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
