"""A registry in the test process: the distribution API's manifest endpoints behind token auth.

It answers as Docker Hub and GHCR do: a request without a token gets 401 with
`WWW-Authenticate: Bearer realm=<token URL>,service=<name>,scope=repository:<repo>:pull`; the token
URL hands out a token for exactly that service and scope (optionally only with Basic credentials); a
manifest is served with its media type and `Docker-Content-Digest`. Everything is recorded so the
tests can assert the flow, and it listens on 127.0.0.1 on a port the OS picks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.health_server import loopback

SERVICE = "fake-registry.test"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def manifest_body(seed: str) -> bytes:
    """A single-platform OCI manifest; `seed` makes its (fake) config digest differ."""
    config = "sha256:" + hashlib.sha256(f"config {seed}".encode()).hexdigest()
    layer = "sha256:" + hashlib.sha256(f"layer {seed}".encode()).hexdigest()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 3}],
        },
        indent=2,
    ).encode()


def index_body(*platforms: tuple[str, bytes]) -> bytes:
    manifests = []
    for platform, body in platforms:
        os_name, arch = platform.split("/")
        manifests.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
                "size": len(body),
                "platform": {"os": os_name, "architecture": arch},
            }
        )
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()


@dataclass
class FakeRegistry:
    address: str = ""
    # repository -> reference (tag or digest) -> (media type, body)
    manifests: dict[str, dict[str, tuple[str, bytes]]] = field(default_factory=dict)
    credentials: tuple[str, str] | None = None  # required at the token endpoint when set
    wrong_digest_for: set[str] = field(default_factory=set)  # repositories whose header lies
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # (path, query, headers)

    def push(self, repository: str, tag: str, media_type: str, body: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        refs = self.manifests.setdefault(repository, {})
        refs[tag] = refs[digest] = (media_type, body)
        return digest

    def token_requests(self) -> list[dict[str, str]]:
        return [dict(urllib.parse.parse_qsl(query)) for path, query, _ in self.requests if path == "/token"]

    def token_for(self, scope: str) -> str:
        return "token-" + hashlib.sha256(scope.encode()).hexdigest()[:16]


def _handler(registry: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            url = urllib.parse.urlparse(self.path)
            registry.requests.append((url.path, url.query, dict(self.headers.items())))
            if url.path == "/token":
                self._token(dict(urllib.parse.parse_qsl(url.query)))
            elif url.path.startswith("/v2/") and "/manifests/" in url.path:
                repository, reference = url.path[4:].split("/manifests/", 1)
                self._manifest(repository, reference)
            else:
                self._send(404, b'{"errors":[{"code":"NOT_FOUND"}]}')

        do_HEAD = do_GET  # noqa: N815

        def _token(self, query: dict[str, str]) -> None:
            if registry.credentials is not None:
                expected = "Basic " + base64.b64encode(":".join(registry.credentials).encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                    return
            if query.get("service") != SERVICE or not query.get("scope", "").startswith("repository:"):
                self._send(400, b'{"errors":[{"code":"BAD_SCOPE"}]}')
                return
            self._send(200, json.dumps({"token": registry.token_for(query["scope"])}).encode())

        def _manifest(self, repository: str, reference: str) -> None:
            scope = f"repository:{repository}:pull"
            if self.headers.get("Authorization") != f"Bearer {registry.token_for(scope)}":
                challenge = f'Bearer realm="http://{registry.address}/token",service="{SERVICE}",scope="{scope}"'
                self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge})
                return
            found = registry.manifests.get(repository, {}).get(reference)
            if found is None:
                self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                return
            media_type, body = found
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            if repository in registry.wrong_digest_for:
                digest = "sha256:" + "0" * 64
            self._send(200, body, {"Content-Type": media_type, "Docker-Content-Digest": digest})

    return Handler


@contextmanager
def serve(registry: FakeRegistry) -> Iterator[FakeRegistry]:
    with loopback(_handler(registry)) as port:
        registry.address = f"127.0.0.1:{port}"
        yield registry
