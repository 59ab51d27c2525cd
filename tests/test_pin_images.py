"""`make pin-images`: references, the token flow of the distribution API, digests checked against the
bytes, the stack file edited in place, and the images a stack deploys.

The registry here is tests/registry_fake.py, in the test process on 127.0.0.1; the real registry
(distribution v3) is in tests/e2e/test_pin_images_registry.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import SettingsError, load_settings
from scripts import pin_images
from scripts.oci import (
    RegistryClient,
    RegistryError,
    docker_credentials,
    parse_challenge,
    parse_reference,
)
from tests.harness import STACKS, run_program, stack_text
from tests.registry_fake import OCI_INDEX, OCI_MANIFEST, SERVICE, FakeRegistry, index_body, manifest_body, serve


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with serve(FakeRegistry()) as running:
        yield running


def sha(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


# --- references -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "api"),
    [
        ("nginx", "docker.io", "library/nginx", None, "https://registry-1.docker.io"),
        ("nginx:1.27", "docker.io", "library/nginx", "1.27", "https://registry-1.docker.io"),
        (
            "nginxinc/nginx-unprivileged:1.27-alpine",
            "docker.io",
            "nginxinc/nginx-unprivileged",
            "1.27-alpine",
            "https://registry-1.docker.io",
        ),
        ("docker.io/library/postgres:17", "docker.io", "library/postgres", "17", "https://registry-1.docker.io"),
        ("ghcr.io/support-platform/api:1.4.0", "ghcr.io", "support-platform/api", "1.4.0", "https://ghcr.io"),
        (
            "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0",
            "registry.k8s.io",
            "kube-state-metrics/kube-state-metrics",
            "v2.20.0",
            "https://registry.k8s.io",
        ),
        ("127.0.0.1:5000/support/api:1", "127.0.0.1:5000", "support/api", "1", "http://127.0.0.1:5000"),
        ("localhost:5000/api", "localhost:5000", "api", None, "http://localhost:5000"),
        ("[::1]:5000/api:2", "[::1]:5000", "api", "2", "http://[::1]:5000"),
        ("10.0.0.1:5000/api:2", "10.0.0.1:5000", "api", "2", "https://10.0.0.1:5000"),
    ],
)
def test_references_are_read_the_way_docker_reads_them(
    text: str, registry: str, repository: str, tag: str | None, api: str
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.api_base) == (registry, repository, tag, api)
    assert str(ref) == text
    digest = "sha256:" + "c" * 64
    assert ref.pinned(digest) == f"{text}@{digest}"


@pytest.mark.parametrize("text", ["", "UPPER/case:1", "api:", "api@sha256:abc", "api:-bad", "a//b"])
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(RegistryError, match="is not an image reference"):
        parse_reference(text)


def test_a_bearer_challenge_is_read_with_commas_inside_quotes() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "registry.example",
                      "scope": "repository:a/b:pull,push"}  # fmt: skip


def test_docker_login_credentials_are_read_per_registry(tmp_path: Path) -> None:
    def auth(user: str, password: str) -> dict[str, str]:
        return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}

    config = {
        "auths": {
            "https://index.docker.io/v1/": auth("hub-user", "hub:pass"),
            "ghcr.io": auth("bot", "ghp_x"),
            "https://127.0.0.1:5000": auth("local", "pw"),
            "helper-only.example": {},
        },
        "credsStore": "desktop",
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    found = docker_credentials({"DOCKER_CONFIG": str(tmp_path)})
    assert found == {"docker.io": ("hub-user", "hub:pass"), "ghcr.io": ("bot", "ghp_x"),
                     "127.0.0.1:5000": ("local", "pw")}  # fmt: skip
    assert docker_credentials({"DOCKER_CONFIG": str(tmp_path / "absent")}) == {}


# --- the token flow against the in-test registry -------------------------------------------------


def test_a_tag_resolves_through_the_token_flow_to_the_digest_of_the_bytes(registry: FakeRegistry) -> None:
    body = manifest_body("api")
    digest = registry.push("support/api", "1.0.0", OCI_MANIFEST, body)
    client = RegistryClient()
    manifest = client.manifest(parse_reference(f"{registry.address}/support/api:1.0.0"))
    assert manifest.digest == digest == sha(body)
    assert not manifest.is_index and manifest.describe() == "single-platform manifest"
    # 401 with a challenge, one token request for exactly that service and scope, then the manifest.
    assert registry.token_requests() == [{"service": SERVICE, "scope": "repository:support/api:pull"}]
    manifest_calls = [h for p, _, h in registry.requests if p == "/v2/support/api/manifests/1.0.0"]
    assert len(manifest_calls) == 2
    assert "Authorization" not in manifest_calls[0]
    assert manifest_calls[1]["Authorization"] == f"Bearer {registry.token_for('repository:support/api:pull')}"
    assert OCI_INDEX in manifest_calls[0]["Accept"] and OCI_MANIFEST in manifest_calls[0]["Accept"]
    # The token is reused for the same repository; the digest itself resolves too.
    assert client.manifest(parse_reference(f"{registry.address}/support/api@{digest}")).digest == digest
    assert len(registry.token_requests()) == 1


def test_a_multi_platform_tag_resolves_to_its_index(registry: FakeRegistry) -> None:
    amd64, arm64 = manifest_body("amd64"), manifest_body("arm64")
    registry.push("support/web", sha(amd64), OCI_MANIFEST, amd64)
    registry.push("support/web", sha(arm64), OCI_MANIFEST, arm64)
    index = index_body(("linux/amd64", amd64), ("linux/arm64", arm64))
    digest = registry.push("support/web", "2.0", OCI_INDEX, index)
    manifest = RegistryClient().manifest(parse_reference(f"{registry.address}/support/web:2.0"))
    assert manifest.digest == digest and manifest.is_index
    assert manifest.platforms == ("linux/amd64", "linux/arm64")
    assert manifest.describe() == "index of 2: linux/amd64, linux/arm64"


def test_a_digest_header_that_does_not_match_the_bytes_is_refused(registry: FakeRegistry) -> None:
    registry.push("support/api", "1.0.0", OCI_MANIFEST, manifest_body("api"))
    registry.wrong_digest_for.add("support/api")
    with pytest.raises(RegistryError, match=r"states Docker-Content-Digest sha256:0{64} but the manifest it sent"):
        RegistryClient().manifest(parse_reference(f"{registry.address}/support/api:1.0.0"))


def test_an_unknown_tag_names_the_image(registry: FakeRegistry) -> None:
    with pytest.raises(RegistryError, match=r"support/api:9\.9\.9: .* has no manifest for '9\.9\.9' \(404"):
        RegistryClient().manifest(parse_reference(f"{registry.address}/support/api:9.9.9"))


def test_a_private_repository_needs_the_docker_login_of_its_registry(registry: FakeRegistry, tmp_path: Path) -> None:
    registry.credentials = ("ci-bot", "s3cret")
    digest = registry.push("private/api", "1.0.0", OCI_MANIFEST, manifest_body("private"))
    ref = parse_reference(f"{registry.address}/private/api:1.0.0")
    with pytest.raises(RegistryError, match=rf"token service .* answered 401 .*`docker login {registry.address}`"):
        RegistryClient().manifest(ref)
    login = base64.b64encode(b"ci-bot:s3cret").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {registry.address: {"auth": login}}}))
    client = RegistryClient(credentials=docker_credentials({"DOCKER_CONFIG": str(tmp_path)}))
    assert client.manifest(ref).digest == digest


def test_an_unreachable_registry_is_named() -> None:
    # A port the OS gave and took back: nothing listens there.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RegistryError, match=rf"cannot reach 127\.0\.0\.1:{port}"):
        RegistryClient(timeout=5).manifest(parse_reference(f"127.0.0.1:{port}/a/b:1"))


# --- the stack file, edited in place -------------------------------------------------------------

STACK = """\
# yaml-language-server: $schema=./schema/stack-config.schema.json
# staging-like: the comment lines and the layout must survive a pin.
config:
  support-platform:environment: staging
  support-platform:target: {{mode: cluster, context: ctx}}
  support-platform:app:
    services:
      api:
        # The api's release.
        image: "{api}"   # trailing comment
        replicas: 2
      web:
        image: '{web}'
"""


def test_values_are_replaced_in_the_text_and_nothing_else_changes() -> None:
    text = STACK.format(api="ghcr.io/a/api:1", web="docker.io/a/web:2")
    pinned = pin_images.with_value(
        text, pin_images.file_path("app.services.api.image"), "ghcr.io/a/api:1@sha256:" + "d" * 64
    )
    pinned = pin_images.with_value(pinned, pin_images.file_path("app.services.web.image"), "it's")
    assert pinned == STACK.format(api="ghcr.io/a/api:1@sha256:" + "d" * 64, web="it''s")
    plain = "config:\n  support-platform:app: {services: {api: {image: x:1}}}  # c\n"
    assert pin_images.with_value(plain, pin_images.file_path("app.services.api.image"), "y: z") == (
        "config:\n  support-platform:app: {services: {api: {image: 'y: z'}}}  # c\n"
    )
    with pytest.raises(KeyError):
        pin_images.with_value(text, pin_images.file_path("app.services.mcp.image"), "x")


def test_pin_writes_the_registrys_digests_and_check_fails_once_one_is_gone(registry: FakeRegistry) -> None:
    api_body = manifest_body("api")
    api_digest = registry.push("support/api", "1.0.0", OCI_MANIFEST, api_body)
    arm, amd = manifest_body("arm"), manifest_body("amd")
    web_digest = registry.push("support/web", "2.0", OCI_INDEX, index_body(("linux/amd64", amd), ("linux/arm64", arm)))
    api, web = f"{registry.address}/support/api:1.0.0", f"{registry.address}/support/web:2.0"
    text = STACK.format(api=api, web=web)
    client = RegistryClient()

    outcome = pin_images.pin("staging", text, client, only=["app.services"])
    assert outcome.problems == []
    assert outcome.text == STACK.format(api=f"{api}@{api_digest}", web=f"{web}@{web_digest}")
    assert f"app.services.web.image: {web} -> {web}@{web_digest} (index of 2: linux/amd64, linux/arm64)" in (
        outcome.lines
    )
    again = pin_images.pin("staging", outcome.text, client, only=["app.services"])
    assert again.text == outcome.text and all("already pinned" in line for line in again.lines)

    checked = pin_images.pin("staging", outcome.text, client, check=True, only=["app.services"])
    assert checked.problems == [] and len(checked.lines) == 2
    del registry.manifests["support/api"][api_digest]
    gone = pin_images.pin("staging", outcome.text, client, check=True, only=["app.services"])
    assert len(gone.problems) == 1
    assert gone.problems[0].startswith("app.services.api.image (stack file):")
    assert f"has no manifest for '{api_digest}'" in gone.problems[0]

    # A moved tag: --refresh re-resolves it; a plain pin leaves the pinned value alone.
    moved = registry.push("support/web", "2.0", OCI_MANIFEST, manifest_body("web 2.0.1"))
    assert pin_images.pin("staging", outcome.text, client, only=["app.services.web"]).text == outcome.text
    refreshed = pin_images.pin("staging", outcome.text, client, refresh=True, only=["app.services.web"])
    assert f"{web}@{moved}" in refreshed.text


class NothingServed:
    """An opener standing in for every public registry: 404 for any manifest (no network here)."""

    def __call__(self, request: Any, timeout: float) -> Any:
        import io
        import urllib.error

        raise urllib.error.HTTPError(request.full_url, 404, "Not Found", {}, io.BytesIO(b"{}"))  # type: ignore[arg-type]


def test_check_covers_the_defaults_and_production_refuses_a_bare_tag() -> None:
    text = stack_text("production")
    checked = pin_images.pin("production", text, RegistryClient(opener=NothingServed()), check=True)
    paths = [problem.split(" ", 1)[0] for problem in checked.problems]
    assert "app.services.api.image" in paths and "monitoring.images.prometheus" in paths
    assert any(p.startswith("data.postgres.image (default)") for p in checked.problems)
    # The committed file, not yet pinned: the bare tag is a problem in production, a note elsewhere.
    committed = (pin_images.ROOT / "Pulumi.production.yaml").read_text()
    bare = pin_images.pin("production", committed, RegistryClient(opener=NothingServed()), check=True,
                          only=["app.services.api"])  # fmt: skip
    assert bare.problems == ["app.services.api.image (stack file): ghcr.io/support-platform/api:1.4.0 is not pinned "
                             "by digest"]  # fmt: skip
    staging = pin_images.pin("staging", stack_text("staging"), RegistryClient(opener=NothingServed()), check=True,
                             only=["app.services"])  # fmt: skip
    assert staging.problems == [] and all("is not pinned by digest" in line for line in staging.lines)


def test_the_committed_production_file_is_refused_until_pinned_with_how() -> None:
    document = yaml.safe_load((pin_images.ROOT / "Pulumi.production.yaml").read_text())
    config = document["config"]
    structured = {k.split(":", 1)[1]: v for k, v in config.items()}
    with pytest.raises(SettingsError) as raised:
        load_settings("production", structured, [], {"llmApiKey": True, "alertWebhookUrl": True})
    message = str(raised.value)
    assert "support-platform:app.services.api.image: production requires an image pinned by digest" in message
    assert "make pin-images STACK=production" in message and "release workflow" in message
    # Every digest the committed file does carry is a pinned reference with its tag kept.
    uses = pin_images.deployed_images(pin_images.stack_settings("production", document))
    pinned = [use.image for use in uses if "@" in use.image]
    assert pinned and all(parse_reference(image).tag for image in pinned)


# --- what a stack deploys ------------------------------------------------------------------------


def container_images(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ("containers", "initContainers") and isinstance(inner, list):
                yield from (c["image"] for c in inner if "image" in c)
            else:
                yield from container_images(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from container_images(inner)


@pytest.mark.parametrize("stack", STACKS)
def test_the_images_pin_images_finds_are_exactly_the_ones_the_program_deploys(stack: str) -> None:
    run = run_program(stack)
    assert run.error is None, run.error
    deployed = {
        image for r in run.resources if r.type.startswith("kubernetes:") for image in container_images(r.inputs)
    }
    document = yaml.safe_load(stack_text(stack))
    found = {use.image for use in pin_images.deployed_images(pin_images.stack_settings(stack, document))}
    assert found == deployed
