"""The flows a team runs, on a shared backend as well as on the file backend.

Each test runs twice: on `file://` (a directory of its own) and on the CLI's DIY `postgres://` backend
(PostgreSQL on 127.0.0.1, a table per test; tests/e2e/state_backend.py). What a team does: preview
with the policy pack, up, a second up that changes nothing, the history, a rollback of configuration
and of a built image's digest, with the rollback's message in the history, and the lock that keeps two
updates apart. scripts/rollback.py must do it through what every backend serves.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.conftest import MANIFEST_TYPES, LocalRegistry, Project
from tests.e2e.state_backend import StateServer
from tests.e2e.test_images import building_api, deployed_image
from tests.harness import TEST_SECRETS

pytestmark = [pytest.mark.engine, pytest.mark.integration]


def on_postgres(project: Project) -> bool:
    return project.env["PULUMI_BACKEND_URL"].startswith("postgres://")


def table_of(project: Project) -> str:
    return parse_qs(urlparse(project.env["PULUMI_BACKEND_URL"]).query)["table"][0]


def key_prefix(project: Project) -> str:
    """Where the backend keeps `.pulumi/`: the DIY postgres backend prefixes keys with the URL's path."""
    return urlparse(project.env["PULUMI_BACKEND_URL"]).path.lstrip("/") + "/"


def stored_keys(project: Project, server: StateServer) -> list[str]:
    return server.psql(f"SELECT key FROM {table_of(project)} ORDER BY key").splitlines()  # noqa: S608 - our table


def api_image(tag: str):  # type: ignore[no-untyped-def]
    def update(app: dict[str, Any]) -> dict[str, Any]:
        app["services"]["api"]["image"] = f"ghcr.io/support-platform/api:{tag}"
        return app

    return update


def assert_state_lives_on_the_backend(project: Project, request: pytest.FixtureRequest) -> None:
    local = project.root.parent / "state"
    if on_postgres(project):
        keys = stored_keys(project, request.getfixturevalue("state_server"))
        prefix = key_prefix(project)
        assert f"{prefix}.pulumi/stacks/support-platform/dev.json" in keys, keys
        assert any(k.startswith(f"{prefix}.pulumi/history/support-platform/dev/") for k in keys), keys
        assert not any(local.rglob("*.json")), "a postgres run wrote state into the file backend"
    else:
        assert any((local / ".pulumi" / "history").rglob("*.history.json"))


def test_preview_up_history_and_rollback_on_the_backend(
    backend_project: Project, request: pytest.FixtureRequest
) -> None:
    project = backend_project
    project.set_secrets("production")
    preview = project.run("preview", "production")
    assert "support-platform-guardrails" in preview.stdout
    assert "can't run policy" not in preview.stdout + preview.stderr
    assert TEST_SECRETS["llmApiKey"] not in preview.stdout + preview.stderr

    first_up = project.run("up", "dev")
    assert "support-platform-guardrails" in first_up.stdout
    first = project.rendered()
    project.run("up", "dev")
    assert set(project.history("dev")[-1]["resourceChanges"]) == {"same"}

    project.edit_stack("dev", "app", api_image("1.5.0"))
    gate = project.script("pr_gate.py", "--stack", "dev")
    assert gate.returncode == 0, gate.stdout[-3000:] + gate.stderr[-3000:]
    assert "gate passed" in gate.stdout
    project.run("up", "dev")
    assert project.rendered() != first

    rolled = project.script("rollback.py", "--stack", "dev", "--to", "1", "--yes")
    assert rolled.returncode == 0, rolled.stdout[-4000:] + rolled.stderr[-4000:]
    assert project.rendered() == first
    updates = project.history("dev")
    assert [(u["version"], u["result"]) for u in updates] == [(n, "succeeded") for n in (1, 2, 3, 4)]
    assert updates[-1]["message"] == "rollback to version 1 (from version 3)"
    messages = [line for line in project.run("history", "dev").stdout.splitlines() if line.startswith("Message: ")]
    assert messages[0] == "Message: rollback to version 1 (from version 3)"
    listing = project.script("rollback.py", "--stack", "dev").stdout.splitlines()
    assert [line.split()[0] for line in listing[1:]] == ["1", "2", "3", "4"]
    assert_state_lives_on_the_backend(project, request)


def test_a_second_update_waits_for_the_lock_and_pulumi_cancel_clears_a_dead_one(
    backend_project: Project, request: pytest.FixtureRequest
) -> None:
    """The lock another CLI holds, written where and how that CLI writes it (the DIY backends' lock
    file: .pulumi/locks/<org>/<project>/<stack>/<id>.json, the writer's pid, user, host and time)."""
    project = backend_project
    project.run("up", "dev")
    lock = json.dumps({"pid": 4242, "username": "teammate", "hostname": "ci-runner-7",
                       "timestamp": "2026-12-06T10:00:00Z"})  # fmt: skip
    key = f".pulumi/locks/organization/support-platform/dev/{uuid.UUID(int=7)}.json"
    if on_postgres(project):
        server: StateServer = request.getfixturevalue("state_server")
        blob = json.dumps({"data": base64.b64encode(lock.encode()).decode()})
        row = f"('{key_prefix(project)}{key}', '{blob}')"
        server.psql(f"INSERT INTO {table_of(project)} (key, data) VALUES {row}")  # noqa: S608
    else:
        path = project.root.parent / "state" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(lock)
    blocked = project.run("up", "dev", check=False)
    assert blocked.returncode != 0
    assert "the stack is currently locked by 1 lock(s)" in blocked.stdout + blocked.stderr
    assert "created by teammate@ci-runner-7 (pid 4242)" in blocked.stdout + blocked.stderr
    assert len(project.history("dev")) == 1, "the refused update must not have run"
    project.run("run", "dev", "cancel", "--yes", "--stack", "dev")
    project.run("up", "dev")
    assert len(project.history("dev")) == 2


@pytest.mark.images
def test_a_built_digest_is_rolled_back_through_the_programs_record(
    backend_project: Project, local_registry: LocalRegistry, request: pytest.FixtureRequest
) -> None:
    project = building_api(backend_project, local_registry)
    context = project.root / "app-src"
    project.run("up", "dev")
    first = deployed_image(project)
    (context / "message.txt").write_text("release two\n")
    project.run("up", "dev")
    second = deployed_image(project)
    assert second != first
    # The program's record: each pushed digest once, in order, each with the time it was pushed.
    outputs = json.loads(project.run("run", "dev", "stack", "output", "--json", "--stack", "dev").stdout)
    assert [e["image"] for e in outputs["builtImages"]["api"]] == [first, second]

    rolled = project.script("rollback.py", "--stack", "dev", "--to", "1", "--yes")
    assert rolled.returncode == 0, rolled.stdout[-4000:] + rolled.stderr[-4000:]
    assert f"built image restored by digest: api={first}" in rolled.stdout
    assert deployed_image(project) == first
    assert f"image: {first}" in (project.root / "Pulumi.dev.yaml").read_text()
    assert project.history("dev")[-1]["message"] == "rollback to version 1 (from version 2)"
    headers, _ = local_registry.get(f"/v2/support/api/manifests/{first.split('@')[1]}", accept=MANIFEST_TYPES)
    assert headers["Docker-Content-Digest"] == first.split("@")[1]
    assert_state_lives_on_the_backend(project, request)
