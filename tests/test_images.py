"""Image builds under mocks: settings checks, what pulumi-docker receives, labels, and the daemon check."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.app.image_build import LABEL_STAGE, labelled_dockerfile, source_revision
from components.config import BuildSettings
from tests.harness import ROOT, TEST_SECRETS, ProgramRun, overlay, raw_stack_value, run_program, stack_config

FIXTURE = "tests/fixtures/api-image"
REPOSITORY = "registry.example.com/support/api"


def build_run(build: dict[str, Any], secrets: dict[str, str] | None = None, **plaintext: str) -> ProgramRun:
    app = overlay(raw_stack_value("dev", "app"), {"services": {"api": {"build": build}}})
    del app["services"]["api"]["image"]
    config, secret_keys = stack_config("dev", overrides={"app": app}, secrets=secrets, plaintext=plaintext)
    return run_program("dev", config, secret_keys)


def build_of(**fields: Any) -> dict[str, Any]:
    return {"context": FIXTURE, "repository": REPOSITORY, "tag": "1.5.0", **fields}


def generated_dockerfile() -> str:
    return (ROOT / ".image-build" / "api.Dockerfile").read_text()


def refused(run: ProgramRun, path: str, text: str) -> None:
    assert run.error is not None, "expected the program to refuse the settings"
    message = str(run.error)
    assert f"support-platform:{path}: " in message, message
    assert text in message, message
    assert run.resources == [], "nothing may be registered when settings are refused"


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("docker_daemon")
@pytest.mark.parametrize(
    ("build", "path", "text"),
    [
        (build_of(context="app-src"), "app.services.api.build.context", "'app-src' is not a directory"),
        (build_of(context="tests/fixtures"), "app.services.api.build.dockerfile", "'Dockerfile' not found"),
        (
            build_of(dockerfile="Containerfile"),
            "app.services.api.build.dockerfile",
            f"looked for {FIXTURE}/Containerfile",
        ),
        (build_of(context="/srv/app"), "app.services.api.build.context", "is absolute"),
        (build_of(context="."), "app.services.api.build.context", "contains the project"),
        (build_of(tag="1.5.0 beta"), "app.services.api.build.tag", "not a valid image tag"),
        (build_of(args={"NPM_TOKEN": "x"}), "app.services.api.build.args", "args.NPM_TOKEN looks like a secret"),
        (build_of(target="Runtime Stage"), "app.services.api.build.target", "not a valid build stage name"),
        (build_of(source="https://x.example/$(id)"), "app.services.api.build.source", "not a valid source URL"),
    ],
    ids=[
        "missing-context",
        "missing-dockerfile",
        "missing-containerfile",
        "absolute",
        "project",
        "tag",
        "secret-arg",
        "target",
        "source",
    ],
)
def test_bad_build_settings_are_refused_before_any_resource(build: dict[str, Any], path: str, text: str) -> None:
    refused(build_run(build), path, text)


@pytest.mark.usefixtures("docker_daemon")
def test_the_registry_password_is_refused_in_plaintext() -> None:
    run = build_run(build_of(registryUsername="ci"), registryPassword="hunter2-plaintext")
    refused(run, "registryPassword", "is set in plaintext")


# --- what the provider gets ----------------------------------------------------------------------


@pytest.mark.usefixtures("docker_daemon")
def test_the_dockerfile_is_resolved_against_the_context_and_handed_over_relative_to_the_project() -> None:
    run = build_run(build_of(context="tests/fixtures", dockerfile="api-image/Dockerfile"))
    assert run.error is None, run.error
    image = run.one("docker:index/image:Image", "api-image")
    assert image.inputs["build"]["context"] == "tests/fixtures"
    # pulumi-docker resolves dockerfile against its working directory, the project: not the context.
    assert image.inputs["build"]["dockerfile"] == ".image-build/api.Dockerfile"
    original = (ROOT / FIXTURE / "Dockerfile").read_text()
    assert generated_dockerfile().startswith(original.rstrip("\n"))


@pytest.mark.usefixtures("docker_daemon")
def test_build_args_target_platform_and_credentials_come_from_settings_and_secret_config() -> None:
    build = build_of(
        args={"APP_VERSION": "1.5.0", "PYTHON_VERSION": "3.12"},
        target="runtime",
        platform="linux/arm64",
        registryUsername="ci-bot",
    )
    run = build_run(build, secrets={"registryPassword": TEST_SECRETS["registryPassword"]})
    assert run.error is None, run.error
    image = run.one("docker:index/image:Image", "api-image")
    assert image.inputs["build"]["args"] == {"APP_VERSION": "1.5.0", "PYTHON_VERSION": "3.12"}
    assert image.inputs["build"]["platform"] == "linux/arm64"
    # The labels ride on a stage built from the chosen one.
    assert image.inputs["build"]["target"] == LABEL_STAGE
    assert f"FROM runtime AS {LABEL_STAGE}" in generated_dockerfile()
    assert image.inputs["registry"] == {
        "server": "registry.example.com",
        "username": "ci-bot",
        "password": TEST_SECRETS["registryPassword"],
    }
    assert image.secret_paths == {"registry.password"}
    for resource in run.resources:
        if resource is not image:
            assert TEST_SECRETS["registryPassword"] not in str(resource.inputs)


@pytest.mark.usefixtures("docker_daemon")
def test_the_image_carries_oci_labels() -> None:
    build = build_of(tag="1.5.0-rc1", revision="4f53cda1", source="https://github.com/acme/support-api")
    run = build_run(build)
    assert run.error is None, run.error
    text = generated_dockerfile()
    assert 'LABEL "org.opencontainers.image.version"="1.5.0-rc1"' in text
    assert 'LABEL "org.opencontainers.image.revision"="4f53cda1"' in text
    assert 'LABEL "org.opencontainers.image.source"="https://github.com/acme/support-api"' in text
    assert "target" not in run.one("docker:index/image:Image", "api-image").inputs["build"]


@pytest.mark.usefixtures("docker_daemon")
def test_the_same_settings_and_context_give_the_same_inputs_so_nothing_rebuilds() -> None:
    first = build_run(build_of(revision="abc123")).one("docker:index/image:Image", "api-image").inputs
    text = generated_dockerfile()
    second = build_run(build_of(revision="abc123")).one("docker:index/image:Image", "api-image").inputs
    assert first == second
    assert generated_dockerfile() == text


def test_label_values_cannot_expand_or_break_out() -> None:
    text, target = labelled_dockerfile("FROM scratch", {"a": 'x"$HOME\\'}, None)
    assert text.endswith('LABEL "a"="x\\"\\$HOME\\\\"\n')
    assert target is None


# --- the revision label --------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.test", *args],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_the_revision_is_the_last_commit_of_the_context_not_head(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    build = BuildSettings(context="app", repository=REPOSITORY, tag="1")
    assert source_revision(str(tmp_path), build) is None, "no git work tree: no revision label"

    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "app")
    app_commit = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "README.md").write_text("docs\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "docs")
    # A commit outside the context changes HEAD but not the image: same label, no rebuild.
    assert source_revision(str(tmp_path), build) == app_commit

    (tmp_path / "app" / "main.py").write_text("print()\n")
    assert source_revision(str(tmp_path), build) == f"{app_commit}-dirty"
    assert source_revision(str(tmp_path), build.model_copy(update={"revision": "release-7"})) == "release-7"


# --- no daemon -----------------------------------------------------------------------------------


def test_a_build_without_a_daemon_fails_at_once_naming_docker_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/missing.sock")
    run = build_run(build_of())
    assert run.error is not None
    message = str(run.error)
    assert "no Docker daemon answers" in message and "DOCKER_HOST=unix://" in message, message
    assert "app.services.api.build" in message and "local-registry.sh start" in message
    assert run.resources == []


def test_a_stack_without_builds_needs_no_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/missing.sock")
    run = run_program("dev")
    assert run.error is None, run.error
    assert run.of_type("docker:index/image:Image") == []
