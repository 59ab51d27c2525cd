"""`scripts/pin_images.py` against the real registry (distribution v3.1.2, the one the image tests use).

The registry binary runs alone on 127.0.0.1 (scripts/images/local-registry.sh builds it once); the
test pushes through the distribution API itself, as `docker push` would: a single-platform image
(config and layer blobs, then its manifest) and a multi-platform index of two such images. The
command run as users run it must write the digests the registry states, `--check` must pass, and
fail once the registry no longer serves one of them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import ROOT

pytestmark = pytest.mark.integration

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Registry:
    address: str

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        url = path if path.startswith("http") else f"http://{self.address}{path}"
        data = body if method in ("POST", "PUT") else None
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 - our loopback registry
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def blob(self, repository: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, headers, _ = self.request("POST", f"/v2/{repository}/blobs/uploads/")
        assert status == 202, status
        location = headers["Location"]
        location = location if location.startswith("http") else f"http://{self.address}{location}"
        status, _, body = self.request("PUT", f"{location}{'&' if '?' in location else '?'}digest={digest}", data,
                                       {"Content-Type": "application/octet-stream"})  # fmt: skip
        assert status == 201, body
        return digest

    def manifest(self, repository: str, reference: str, media_type: str, body: bytes) -> str:
        status, headers, answer = self.request("PUT", f"/v2/{repository}/manifests/{reference}", body,
                                               {"Content-Type": media_type})  # fmt: skip
        assert status == 201, answer
        return headers["Docker-Content-Digest"]

    def image(self, repository: str, reference: str, architecture: str, content: bytes) -> tuple[str, bytes]:
        """Push one single-platform image (a layer holding `content`); its digest as the registry states it."""
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w") as archive:
            info = tarfile.TarInfo("message.txt")
            info.size, info.mtime = len(content), 0
            archive.addfile(info, io.BytesIO(content))
        layer = gzip.compress(tar.getvalue(), mtime=0)
        config = json.dumps({
            "architecture": architecture, "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar.getvalue()).hexdigest()]},
        }).encode()  # fmt: skip
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": self.blob(repository, config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": self.blob(repository, layer), "size": len(layer)}],
        }).encode()  # fmt: skip
        return self.manifest(repository, reference, OCI_MANIFEST, manifest), manifest

    def served_digest(self, repository: str, reference: str) -> str:
        accept = ", ".join((OCI_INDEX, OCI_MANIFEST))
        status, headers, _ = self.request("HEAD", f"/v2/{repository}/manifests/{reference}", headers={"Accept": accept})
        assert status == 200, status
        return headers["Docker-Content-Digest"]


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    built = subprocess.run(
        [str(ROOT / "scripts" / "images" / "local-registry.sh"), "binary"], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr[-3000:]
    binary = built.stdout.strip().splitlines()[-1]
    base = Path(tempfile.mkdtemp(prefix="registry-"))
    import socket

    with socket.socket() as probe:  # a port the OS picks (then frees) for the registry to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (base / "config.yml").write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {base / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    with (base / "registry.log").open("wb") as log:
        process = subprocess.Popen([binary, "serve", str(base / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
    handle = Registry(f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (base / "registry.log").read_text()
            try:
                if handle.request("GET", "/v2/")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the registry did not answer within 30 s"
            time.sleep(0.2)
        yield handle
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


def project_copy(tmp_path: Path) -> Path:
    """The command, the settings model and the stack files, in a directory of their own."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("scripts", "components"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("venv", "__pycache__"))
    for stack in ("dev", "staging", "production"):
        shutil.copy2(ROOT / f"Pulumi.{stack}.yaml", root / f"Pulumi.{stack}.yaml")
    return root


def run_command(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "pin_images.py"), *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(root), "DOCKER_CONFIG": str(root / "no-docker-config")},
    )


def test_pin_images_writes_the_registrys_own_digests_and_check_notices_one_gone(
    registry: Registry, tmp_path: Path
) -> None:
    api_digest, _ = registry.image("support/api", "1.5.0", "amd64", b"api release 1.5.0\n")
    amd64, amd64_body = registry.image("support/web", "amd64-only", "amd64", b"web amd64\n")
    arm64, arm64_body = registry.image("support/web", "arm64-only", "arm64", b"web arm64\n")
    index = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd64, "size": len(amd64_body),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": arm64, "size": len(arm64_body),
             "platform": {"os": "linux", "architecture": "arm64"}},
        ],
    }).encode()  # fmt: skip
    web_digest = registry.manifest("support/web", "2.0.0", OCI_INDEX, index)
    assert registry.served_digest("support/api", "1.5.0") == api_digest
    assert registry.served_digest("support/web", "2.0.0") == web_digest

    root = project_copy(tmp_path)
    stack_file = root / "Pulumi.staging.yaml"
    original = stack_file.read_text()
    api, web = f"{registry.address}/support/api:1.5.0", f"{registry.address}/support/web:2.0.0"
    edited = original.replace("ghcr.io/support-platform/api:1.4.0", api).replace(
        "docker.io/nginxinc/nginx-unprivileged:1.27-alpine", web
    )
    assert edited.count(registry.address) == 2
    stack_file.write_text(edited)

    pinned = run_command(root, "--stack", "staging", "--only", "app.services")
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert f"app.services.web.image: {web} -> {web}@{web_digest} (index of 2: linux/amd64, linux/arm64)" in (
        pinned.stdout
    )
    assert f"app.services.api.image: {api} -> {api}@{api_digest} (single-platform manifest)" in pinned.stdout
    # Only the two values changed: comments and layout are the file's own.
    assert stack_file.read_text() == edited.replace(api, f"{api}@{api_digest}").replace(web, f"{web}@{web_digest}")

    checked = run_command(root, "--stack", "staging", "--only", "app.services", "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    status, _, _ = registry.request("DELETE", f"/v2/support/api/manifests/{api_digest}")
    assert status == 202
    gone = run_command(root, "--stack", "staging", "--only", "app.services", "--check")
    assert gone.returncode == 1
    assert f"error: app.services.api.image (stack file): {api}@{api_digest}: " in gone.stderr
    assert f"has no manifest for '{api_digest}' (404 Not Found)" in gone.stderr
    assert "app.services.web.image (stack file)" in gone.stdout  # the index is still served
