"""Fixtures of the engine suite: the pinned engine and a private copy of the project per test.

Each test works on a copy of the project in a temporary directory (its own state, its own
rendered/dev), with the pinned engine from scripts/engine/ensure-engine.sh.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import rollback
from scripts.project_copy import copy_sources, stack_file_text
from tests.e2e.state_backend import StateServer, start_state_server
from tests.harness import TEST_SECRETS, stack_text

ROOT = Path(__file__).resolve().parents[2]
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
        """The stack's updates oldest first, numbered as scripts/rollback.py numbers them."""
        out = self.run("run", stack, "stack", "history", "--json", "--page-size", "0", "--stack", stack).stdout
        return rollback.numbered(json.loads(out))


def copy_project(base: Path, engine_bin: Path, *, pack_virtualenv: bool = True) -> Project:
    """A private copy of the project under `base`, with its own file backend in base/state.

    `pack_virtualenv=False` leaves out the policy pack's virtualenv, as on a fresh clone."""
    root = base / "project"
    root.mkdir()
    copy_sources(root)
    for stack in ("staging", "production"):
        # As a release deploys it: production's api tag pinned (tests/harness.py, RELEASE_PINS).
        (root / f"Pulumi.{stack}.yaml").write_text(stack_text(stack, stack_file_text(f"Pulumi.{stack}.yaml")))
    # The program and the policy pack run in the project's own virtualenv.
    (root / "venv").symlink_to(ROOT / "venv")
    if pack_virtualenv and (ROOT / "policies" / "venv").exists():
        (root / "policies" / "venv").symlink_to(ROOT / "policies" / "venv")
    (base / "state").mkdir()
    return Project(root, project_env(base, engine_bin))


def project_env(base: Path, engine_bin: Path) -> dict[str, str]:
    """The environment of a project copy under `base`: the pinned engine, its own file backend in
    base/state, the suite's passphrase, and no ambient Pulumi settings or kubeconfig."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env.update(
        PATH=f"{engine_bin}{os.pathsep}{env.get('PATH', '')}",
        PULUMI_BACKEND_URL=f"file://{base / 'state'}",
        PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
        # Previews of cluster stacks must not find a real cluster through an ambient kubeconfig.
        KUBECONFIG=str(base / "no-kubeconfig"),
    )
    if "PULUMI_HOME" in os.environ:
        env["PULUMI_HOME"] = os.environ["PULUMI_HOME"]
    return env


@pytest.fixture
def project(tmp_path: Path, engine_bin: Path) -> Iterator[Project]:
    yield copy_project(tmp_path, engine_bin)


@pytest.fixture(scope="session")
def state_server() -> Iterator[StateServer]:
    """PostgreSQL on 127.0.0.1 for the CLI's DIY postgres:// backend (tests/e2e/state_backend.py)."""
    yield from start_state_server()


@pytest.fixture(params=["file", "postgres"])
def backend_project(request: pytest.FixtureRequest, tmp_path: Path, engine_bin: Path) -> Project:
    """The project on a file backend, or on a table of its own in the shared PostgreSQL backend."""
    project = copy_project(tmp_path, engine_bin)
    if request.param == "postgres":
        server: StateServer = request.getfixturevalue("state_server")
        project.env.update(PULUMI_BACKEND_URL=server.url(str(tmp_path)), **server.env())
    return project


# --- a private Docker daemon and the pinned registry (image builds) ---------------------------

REGISTRY_SCRIPT = ROOT / "scripts" / "images" / "local-registry.sh"
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)


@dataclass(frozen=True)
class LocalRegistry:
    docker_host: str
    address: str  # 127.0.0.1:<port>

    def get(self, path: str, accept: str | None = None) -> tuple[dict[str, str], bytes]:
        request = urllib.request.Request(f"http://{self.address}{path}", headers={"Accept": accept} if accept else {})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http to our own registry
            return dict(response.headers), response.read()


@pytest.fixture(scope="session")
def local_registry() -> Iterator[LocalRegistry]:
    # Short: dockerd's and containerd's unix sockets live under it (at most ~100 bytes a path).
    run_dir = tempfile.mkdtemp(prefix="images-")
    env = {**os.environ, "LOCAL_REGISTRY_DIR": run_dir}
    try:
        started = subprocess.run([str(REGISTRY_SCRIPT), "start"], env=env, capture_output=True, text=True, check=False)
        assert started.returncode == 0, f"local registry did not start:\n{started.stderr[-4000:]}"
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines() if "=" in line
        )
        yield LocalRegistry(docker_host=exports["DOCKER_HOST"], address=exports["LOCAL_REGISTRY"])
    finally:
        stopped = subprocess.run([str(REGISTRY_SCRIPT), "stop"], env=env, capture_output=True, text=True, check=False)
        leftovers = [p for p in ("docker.pid", "registry.pid", "docker.sock") if (Path(run_dir) / p).exists()]
        shutil.rmtree(run_dir, ignore_errors=True)
        assert stopped.returncode == 0 and not leftovers, stopped.stderr
