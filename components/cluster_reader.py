"""A small read-only client of the Kubernetes API, configured from a kubeconfig the way kubectl reads it.

For the preflight (components/preflight.py) and the deploy verification (scripts/verify_deploy.py):
GET requests only, no dependency beyond the standard library. The kubeconfig is the stack's
`target.kubeconfig`, else $KUBECONFIG (a list of files, merged first-wins as kubectl merges them), else
~/.kube/config; the context is the stack's `target.context`. Credentials: client certificates and keys
(files or *-data), bearer tokens (token or tokenFile), and exec plugins (client.authentication.k8s.io
ExecCredential, as cloud providers' kubeconfigs use); the legacy auth-provider plugins are not
supported and say so. Relative paths in a kubeconfig are relative to that file, as in kubectl.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ClusterUnreachableError(Exception):
    """No cluster to ask: no kubeconfig, no such context, credentials that cannot be had, or no answer."""


@dataclass
class ClusterReader:
    server: str
    context: ssl.SSLContext | None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0

    def get(self, path: str) -> tuple[int, Any]:
        """(HTTP status, decoded JSON or None); ClusterUnreachableError when nothing answers."""
        if not self.server.startswith(("https://", "http://")):
            raise ClusterUnreachableError(f"the server URL {self.server} is neither https nor http")
        headers = {"Accept": "application/json", **self.headers}
        request = urllib.request.Request(self.server.rstrip("/") + path, headers=headers)  # noqa: S310 - checked above
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if self.context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.context))
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            try:
                body = json.loads(error.read() or b"null")
            except ValueError:
                body = None
            return error.code, body
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise ClusterUnreachableError(f"{self.server} does not answer ({reason})") from None


# kubectl's default, relative to the home directory (a module value, so tests can point it elsewhere).
HOME_KUBECONFIG = Path(".kube", "config")


def kubeconfig_paths(explicit: str | None, environ: Mapping[str, str], base_dir: str = ".") -> list[Path]:
    if explicit:
        return [Path(base_dir, explicit) if not os.path.isabs(explicit) else Path(explicit)]
    listed = environ.get("KUBECONFIG")
    if listed:
        return [Path(p) for p in listed.split(os.pathsep) if p]
    return [Path(environ.get("HOME", "~")).expanduser() / HOME_KUBECONFIG]


def _merged(paths: Sequence[Path]) -> tuple[dict[str, Any], dict[str, dict[str, Path]]]:
    """The kubeconfig files merged first-wins, and for each named entry the file it came from."""
    merged: dict[str, Any] = {"contexts": {}, "clusters": {}, "users": {}, "current-context": None}
    origin: dict[str, dict[str, Path]] = {"clusters": {}, "users": {}}
    for path in paths:
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            continue
        except (OSError, yaml.YAMLError) as error:
            raise ClusterUnreachableError(f"cannot read the kubeconfig {path} ({error})") from None
        merged["current-context"] = merged["current-context"] or document.get("current-context")
        for section, item in (("contexts", "context"), ("clusters", "cluster"), ("users", "user")):
            for entry in document.get(section) or []:
                name = entry.get("name")
                if name is not None and name not in merged[section]:
                    merged[section][name] = entry.get(item) or {}
                    if section in origin:
                        origin[section][name] = path
    return merged, origin


def reader_for(paths: Sequence[Path], context_name: str | None, timeout: float = 10.0) -> ClusterReader:
    if not any(p.exists() for p in paths):
        raise ClusterUnreachableError(f"no kubeconfig at {os.pathsep.join(map(str, paths))}")
    config, origin = _merged(paths)
    name = context_name or config["current-context"]
    context = config["contexts"].get(name)
    if context is None:
        raise ClusterUnreachableError(f"the kubeconfig has no context '{name}'")
    cluster = config["clusters"].get(context.get("cluster"))
    if cluster is None or not cluster.get("server"):
        raise ClusterUnreachableError(f"context '{name}' names no cluster with a server")
    user = config["users"].get(context.get("user"), {})
    cluster_dir = origin["clusters"].get(context.get("cluster"), paths[0]).parent
    user_dir = origin["users"].get(context.get("user"), paths[0]).parent
    server = str(cluster["server"])
    ssl_context = None
    if server.startswith("https://"):
        ssl_context = _tls(cluster, cluster_dir)
    headers: dict[str, str] = {}
    credential = _exec_credential(user["exec"], user_dir) if user.get("exec") else {}
    if user.get("auth-provider"):
        raise ClusterUnreachableError(f"user of context '{name}' uses an auth-provider plugin, which is not supported")
    token = credential.get("token") or user.get("token")
    if not token and user.get("tokenFile"):
        token = _path(user["tokenFile"], user_dir).read_text().strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif user.get("username") and user.get("password"):
        basic = base64.b64encode(f"{user['username']}:{user['password']}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    if ssl_context is not None:
        cert = credential.get("clientCertificateData") or _data(user, "client-certificate", user_dir)
        key = credential.get("clientKeyData") or _data(user, "client-key", user_dir)
        if cert and key:
            _load_client_pair(ssl_context, cert, key)
    return ClusterReader(server, ssl_context, headers, timeout)


def _path(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


def _data(entry: Mapping[str, Any], field_name: str, base: Path) -> str | None:
    """A PEM from `<field>-data` (base64) or from the file `<field>` names."""
    if entry.get(f"{field_name}-data"):
        return base64.b64decode(entry[f"{field_name}-data"]).decode()
    if entry.get(field_name):
        return _path(str(entry[field_name]), base).read_text()
    return None


def _tls(cluster: Mapping[str, Any], base: Path) -> ssl.SSLContext:
    if cluster.get("insecure-skip-tls-verify"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    authority = _data(cluster, "certificate-authority", base)
    context = ssl.create_default_context(cadata=authority) if authority else ssl.create_default_context()
    if cluster.get("tls-server-name"):
        # The certificate names another host than the server URL: verify that name instead.
        context.check_hostname = False
    return context


def _load_client_pair(context: ssl.SSLContext, cert: str, key: str) -> None:
    # ssl loads a client pair only from files: a private directory, removed at once.
    with tempfile.TemporaryDirectory(prefix="kube-client-") as directory:
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        for path, text in ((cert_path, cert), (key_path, key)):
            path.touch(mode=0o600)
            path.write_text(text)
        context.load_cert_chain(str(cert_path), str(key_path))


def _exec_credential(spec: Mapping[str, Any], base: Path) -> dict[str, str]:
    """Run an exec credential plugin (kubectl's protocol) and return its status: token or client pair."""
    command = str(spec.get("command") or "")
    if not command:
        raise ClusterUnreachableError("the kubeconfig's exec plugin names no command")
    if "/" in command and not os.path.isabs(command):
        command = str(base / command)
    env = dict(os.environ)
    env.update({str(e["name"]): str(e["value"]) for e in spec.get("env") or []})
    info = {"apiVersion": spec.get("apiVersion", "client.authentication.k8s.io/v1"), "kind": "ExecCredential",
            "spec": {"interactive": False}}  # fmt: skip
    env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
    try:
        proc = subprocess.run(  # noqa: S603 - the command the kubeconfig's owner configured, as kubectl runs it
            [command, *map(str, spec.get("args") or [])], env=env, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        raise ClusterUnreachableError(f"the exec credential plugin {command} did not run ({error})") from None
    if proc.returncode != 0:
        raise ClusterUnreachableError(f"the exec credential plugin {command} failed: {proc.stderr.strip()[:300]}")
    try:
        status = json.loads(proc.stdout).get("status") or {}
    except ValueError:
        raise ClusterUnreachableError(f"the exec credential plugin {command} printed no ExecCredential") from None
    return {k: str(v) for k, v in status.items() if k in ("token", "clientCertificateData", "clientKeyData")}
