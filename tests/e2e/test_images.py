"""Image builds through the real engine: a private dockerd and the pinned registry on 127.0.0.1.

Run with `make images` (or `pytest -m images tests/e2e`). The session fixture starts both with
scripts/images/local-registry.sh (installing docker.io and building the registry on first use)
and always stops them. Base images cannot be pulled here, so the context builds FROM scratch.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import MANIFEST_TYPES, LocalRegistry, Project

pytestmark = [pytest.mark.engine, pytest.mark.images]


@pytest.fixture
def images_project(project: Project, local_registry: LocalRegistry) -> Project:
    return building_api(project, local_registry)


def building_api(project: Project, local_registry: LocalRegistry) -> Project:
    """The project with a FROM scratch context in app-src, api built from it, and the daemon in reach."""
    context = project.root / "app-src"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY message.txt /message.txt\n")
    (context / "message.txt").write_text("release one\n")

    def build_api(app: dict[str, Any]) -> dict[str, Any]:
        api = app["services"]["api"]
        api.pop("image")
        api["build"] = {"context": "app-src", "repository": f"{local_registry.address}/support/api", "tag": "1.5.0"}
        return app

    project.edit_stack("dev", "app", build_api)
    project.env["DOCKER_HOST"] = local_registry.docker_host
    return project


def deployed_image(project: Project) -> str:
    for content in project.rendered().values():
        manifest = yaml.safe_load(content)
        if manifest["kind"] == "Deployment" and manifest["metadata"]["name"] == "api":
            image: str = manifest["spec"]["template"]["spec"]["containers"][0]["image"]
            return image
    raise AssertionError("no api Deployment was rendered")


def git(project: Project, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.test", *args],  # noqa: S607
        cwd=project.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_up_pushes_the_image_deploys_its_digest_and_a_second_up_changes_nothing(
    images_project: Project, local_registry: LocalRegistry
) -> None:
    project = images_project
    git(project, "init", "-q")
    git(project, "add", "app-src")
    git(project, "commit", "-qm", "app source")
    revision = git(project, "log", "-1", "--format=%H", "--", "app-src")

    project.run("up", "dev")
    image = deployed_image(project)
    repository, digest = image.split("@", 1)
    assert repository == f"{local_registry.address}/support/api" and digest.startswith("sha256:"), image

    headers, body = local_registry.get(f"/v2/support/api/manifests/{digest}", accept=MANIFEST_TYPES)
    assert headers["Docker-Content-Digest"] == digest
    config_digest = json.loads(body)["config"]["digest"]
    _, config = local_registry.get(f"/v2/support/api/blobs/{config_digest}")
    labels = json.loads(config)["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == "1.5.0"
    assert labels["org.opencontainers.image.revision"] == revision
    _, tag_manifest = local_registry.get("/v2/support/api/manifests/1.5.0", accept=MANIFEST_TYPES)
    assert tag_manifest == body, "the tag points at the deployed digest"

    before = project.rendered()
    project.run("up", "dev")
    last = project.history("dev")[-1]
    assert last["result"] == "succeeded"
    assert set(last["resourceChanges"]) == {"same"}, last["resourceChanges"]
    assert project.rendered() == before


def test_a_changed_context_rolls_a_new_digest_and_rollback_returns_to_the_first(
    images_project: Project, local_registry: LocalRegistry
) -> None:
    project = images_project
    project.run("up", "dev")
    first = deployed_image(project)

    (project.root / "app-src" / "message.txt").write_text("release two\n")
    result = project.run("up", "dev")
    second = deployed_image(project)
    assert second != first and second.split("@")[0] == first.split("@")[0]
    changes = project.history("dev")[-1]["resourceChanges"]
    assert changes.get("update", 0) >= 2, changes  # the image and the api Deployment
    # One replacement: the api's migration Job, named after the image it migrates to.
    assert changes.get("replace") == 1 and not changes.get("delete"), changes
    assert "api-deployment" in result.stdout

    rollback = project.script("rollback.py", "--stack", "dev", "--to", "1", "--yes")
    assert rollback.returncode == 0, rollback.stdout[-4000:] + rollback.stderr[-4000:]
    assert deployed_image(project) == first
    assert f"image: {first}" in (project.root / "Pulumi.dev.yaml").read_text()
    headers, _ = local_registry.get(f"/v2/support/api/manifests/{first.split('@')[1]}", accept=MANIFEST_TYPES)
    assert headers["Docker-Content-Digest"] == first.split("@")[1]
    assert project.history("dev")[-1]["message"].startswith("rollback to version 1")


def test_without_a_daemon_even_a_preview_stops_at_once_naming_docker_host(
    images_project: Project, tmp_path: Path
) -> None:
    project = images_project
    project.env["DOCKER_HOST"] = f"unix://{tmp_path}/no-daemon.sock"
    result = project.run("preview", "dev", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "no Docker daemon answers" in output and "DOCKER_HOST=unix://" in output, output[-3000:]
    assert "failed to connect to any docker daemon" not in output
