"""A small client of the OCI distribution API: resolve an image tag to the digest its registry serves.

What `docker pull` does before it pulls, and no more: parse the reference the way Docker does
(`nginx` is `docker.io/library/nginx`, served by registry-1.docker.io), ask for the manifest with
every manifest media type in Accept (so a multi-platform tag answers with its index), answer a 401 the
way the big registries expect (a `Bearer realm=...,service=...,scope=...` challenge is exchanged at
the realm for a token, with the `docker login` credentials of that registry when there are any; a
`Basic` challenge is answered with them directly), and take the digest the registry states in
`Docker-Content-Digest`, checked against the sha256 of the bytes it sent.

Registries on loopback (127.0.0.0/8, ::1, localhost) are spoken to over plain HTTP, as dockerd does;
every other registry over HTTPS with certificate verification.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
# Keys `docker login` writes for Docker Hub in config.json.
DOCKER_HUB_AUTH_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^(?:(?P<domain>(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?)/)?"
    rf"(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(Exception):
    """A reference that cannot be resolved, with what the registry said and what to do."""


@dataclass(frozen=True)
class Reference:
    """An image reference as written (`domain` as given, or None for Docker Hub's short form)."""

    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def registry(self) -> str:
        """The registry's name as `docker login` knows it (docker.io for Docker Hub)."""
        return self.domain or DOCKER_HUB

    @property
    def repository(self) -> str:
        """The repository in API paths: Docker Hub's official images live under library/."""
        if self.registry == DOCKER_HUB and "/" not in self.path:
            return f"library/{self.path}"
        return self.path

    @property
    def api_base(self) -> str:
        host = DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry
        return f"{'http' if is_loopback(host) else 'https'}://{host}"

    @property
    def name(self) -> str:
        """The reference without tag or digest, as written."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def pinned(self, digest: str) -> str:
        """This reference pinned: the tag kept for people, the digest for the runtime."""
        return f"{self.name}{':' + self.tag if self.tag else ''}@{digest}"

    def __str__(self) -> str:
        return f"{self.name}{':' + self.tag if self.tag else ''}{'@' + self.digest if self.digest else ''}"


def parse_reference(text: str) -> Reference:
    match = _REFERENCE.match(text)
    if not match:
        raise RegistryError(f"'{text}' is not an image reference (registry/repository[:tag][@sha256:digest])")
    domain = match.group("domain")
    path = match.group("path")
    # Docker's rule: the first component is a registry only if it looks like a host name.
    if domain is not None and not ("." in domain or ":" in domain or domain == "localhost" or domain.startswith("[")):
        path = f"{domain}/{path}"
        domain = None
        if not re.fullmatch(rf"{_COMPONENT}(?:/{_COMPONENT})*", path):
            raise RegistryError(f"'{text}' is not an image reference (repository names are lower case)")
    return Reference(domain, path, match.group("tag"), match.group("digest"))


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Manifest:
    """What a registry serves for a reference: its digest, media type and, for an index, platforms."""

    digest: str
    media_type: str
    platforms: tuple[str, ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def describe(self) -> str:
        if self.is_index:
            return f"index of {len(self.platforms)}: {', '.join(self.platforms) or 'no platforms'}"
        return "single-platform manifest"


def docker_credentials(environ: Mapping[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """registry -> (user, password) from `docker login`'s config.json ($DOCKER_CONFIG or ~/.docker).

    Only `auths` entries are read; credential helpers (credsStore, credHelpers) keep their secrets in
    the operating system's store, which this does not call.
    """
    environ = os.environ if environ is None else environ
    directory = Path(environ.get("DOCKER_CONFIG") or Path(environ.get("HOME", "~")).expanduser() / ".docker")
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    found: dict[str, tuple[str, str]] = {}
    for key, entry in (config.get("auths") or {}).items():
        encoded = (entry or {}).get("auth") if isinstance(entry, Mapping) else None
        if not encoded:
            continue
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            continue
        host = urllib.parse.urlparse(key).netloc if "://" in key else key.rstrip("/")
        registry = DOCKER_HUB if key in DOCKER_HUB_AUTH_KEYS or host in DOCKER_HUB_AUTH_KEYS else host
        found[registry] = (user, password)
    return found


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…",scope="…"` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


Opener = Callable[[urllib.request.Request, float], Any]


def _default_opener(request: urllib.request.Request, timeout: float) -> Any:
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) URLs built above


@dataclass
class RegistryClient:
    credentials: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    timeout: float = 20.0
    opener: Opener = _default_opener
    # (registry, realm, service, scope) -> token: one token exchange per repository and run.
    _tokens: dict[tuple[str, str, str, str], str] = field(default_factory=dict)

    def manifest(self, ref: Reference, target: str | None = None) -> Manifest:
        """The manifest `target` (a tag or a digest; default: the reference's digest, else its tag) names."""
        target = target or ref.digest or ref.tag
        if target is None:
            raise RegistryError(f"{ref}: neither a tag nor a digest to resolve")
        url = f"{ref.api_base}/v2/{ref.repository}/manifests/{target}"
        status, headers, body = self._get(ref, url)
        if status == 404:
            raise RegistryError(f"{ref}: {ref.registry} has no manifest for '{target}' (404 Not Found)")
        if status != 200:
            raise RegistryError(f"{ref}: {ref.registry} answered {status} for {url}: {body[:300]!r}")
        computed = "sha256:" + hashlib.sha256(body).hexdigest()
        stated = headers.get("docker-content-digest")
        if stated is not None and stated != computed:
            raise RegistryError(
                f"{ref}: {ref.registry} states Docker-Content-Digest {stated} but the manifest it sent hashes to "
                f"{computed}; refusing to pin either"
            )
        if target.startswith("sha256:") and computed != target:
            raise RegistryError(f"{ref}: asked for {target}, the registry sent a manifest that hashes to {computed}")
        media_type = headers.get("content-type", "").split(";", 1)[0].strip()
        document = json.loads(body)
        media_type = media_type or str(document.get("mediaType") or "")
        if media_type not in (*INDEX_TYPES, *MANIFEST_TYPES):
            raise RegistryError(f"{ref}: {ref.registry} served media type '{media_type}', not an image manifest")
        platforms: tuple[str, ...] = ()
        if media_type in INDEX_TYPES:
            platforms = tuple(_platform(m.get("platform") or {}) for m in document.get("manifests") or [])
        return Manifest(computed, media_type, platforms)

    def _get(self, ref: Reference, url: str) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = self._send(url, {"Accept": ACCEPT}, ref)
        if status != 401:
            return status, headers, body
        scheme, params = parse_challenge(headers.get("www-authenticate", ""))
        credentials = self.credentials.get(ref.registry)
        if scheme == "bearer":
            token = self._token(ref, params, credentials)
            status, headers, body = self._send(url, {"Accept": ACCEPT, "Authorization": f"Bearer {token}"}, ref)
        elif scheme == "basic" and credentials is not None:
            status, headers, body = self._send(url, {"Accept": ACCEPT, "Authorization": _basic(credentials)}, ref)
        if status == 401:
            raise RegistryError(
                f"{ref}: {ref.registry} refused access ({'with' if credentials else 'without'} credentials); "
                f"log in with `docker login {ref.registry}` (read from $DOCKER_CONFIG/config.json or "
                "~/.docker/config.json) with an account that may pull it"
            )
        return status, headers, body

    def _token(self, ref: Reference, params: Mapping[str, str], credentials: tuple[str, str] | None) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"{ref}: {ref.registry} asked for a bearer token but named no realm")
        service = params.get("service", "")
        scope = params.get("scope") or f"repository:{ref.repository}:pull"
        key = (ref.registry, realm, service, scope)
        if key not in self._tokens:
            query = urllib.parse.urlencode({k: v for k, v in (("service", service), ("scope", scope)) if v})
            headers = {"Authorization": _basic(credentials)} if credentials else {}
            status, _, body = self._send(f"{realm}{'&' if '?' in realm else '?'}{query}", headers, ref)
            if status != 200:
                raise RegistryError(
                    f"{ref}: the token service {realm} answered {status} for scope '{scope}'"
                    f"{'' if credentials else ' (no credentials: `docker login ' + ref.registry + '`)'}"
                )
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
            if not token:
                raise RegistryError(f"{ref}: the token service {realm} returned no token")
            self._tokens[key] = str(token)
        return self._tokens[key]

    def _send(self, url: str, headers: Mapping[str, str], ref: Reference) -> tuple[int, dict[str, str], bytes]:
        if urllib.parse.urlparse(url).scheme not in ("http", "https"):
            # A token realm is the registry's to name: never let it point at a file or another scheme.
            raise RegistryError(f"{ref}: refusing to fetch '{url}' (only http and https)")
        request = urllib.request.Request(url, headers=dict(headers), method="GET")  # noqa: S310 - checked above
        try:
            with self.opener(request, self.timeout) as response:
                return response.status, _lower(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, _lower(error.headers), error.read()
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(f"{ref}: cannot reach {urllib.parse.urlparse(url).netloc} ({reason})") from None


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers.items() if headers is not None else [])}


def _basic(credentials: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()


def _platform(platform: Mapping[str, Any]) -> str:
    parts = [str(platform.get("os", "?")), str(platform.get("architecture", "?"))]
    if platform.get("variant"):
        parts.append(str(platform["variant"]))
    return "/".join(parts)
