"""The web service's nginx.conf, rendered as text: a pure function of the service's settings.

Stock nginx-unprivileged answers its probes' /health with 404, so the pods never become ready on a
real cluster (kwok marks pods ready without probing). This file replaces the image's nginx.conf
(mounted from a ConfigMap; its digest is in the pod's checksum): the probes' paths answer 200, every
unknown path falls back to the app's index.html, security headers on every answer, gzip, no version in
headers, the unprivileged port, and every file nginx writes under /tmp (an emptyDir: the root
filesystem is read-only). tests/test_web_server.py runs it in Debian's nginx as the pod's UID.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from components.config import NginxSettings, ServiceSettings

MIME_TYPES = "/etc/nginx/mime.types"
CONFIG_PATH = "/etc/nginx/nginx.conf"
_LISTEN = re.compile(r"^([0-9.]+:)?[0-9]{1,5}$")


def health_paths(svc: ServiceSettings) -> list[str]:
    """The HTTP paths the service's probes ask (on its http port): each answers 200 from nginx itself."""
    paths = (p.path for p in (svc.probes.startup, svc.probes.readiness, svc.probes.liveness))
    return sorted({p for p in paths if p is not None and p != "/"})


def _headers(headers: Mapping[str, str], indent: str) -> list[str]:
    # `always`: on errors too. A location with an add_header of its own inherits none of these, so
    # every such location repeats them.
    return [f'{indent}add_header {name} "{value}" always;' for name, value in headers.items()]


def _location(match: str, body: Iterable[str]) -> list[str]:
    return [f"        location {match} {{", *(f"            {line}" for line in body), "        }"]


def nginx_conf(
    listen: str | int,
    settings: NginxSettings,
    health: Iterable[str],
    *,
    temp_dir: str = "/tmp",
    root: str | None = None,
    mime_types: str = MIME_TYPES,
) -> str:
    """`listen` is the port (the pod) or address:port (a test on 127.0.0.1); `temp_dir`, `root` and
    `mime_types` are overridable for the same reason, everything else is what the pod runs."""
    listen = str(listen)
    if not _LISTEN.match(listen):
        raise ValueError(f"nginx.conf: listen {listen!r} is not a port or address:port")
    for path in (temp_dir, root or settings.root, mime_types, *health):
        if not re.fullmatch(r"/[A-Za-z0-9._/-]*", path):
            raise ValueError(f"nginx.conf: {path!r} is not a plain absolute path")
    headers = settings.security_headers
    lines = [
        "# Rendered by components/app/web_server.py: nginx serving the single-page app as a non-root user.",
        # One worker: the container's CPU limit is below one core, and static files need no more.
        "worker_processes 1;",
        f"pid {temp_dir}/nginx.pid;",
        "error_log stderr warn;",
        "events {",
        "    worker_connections 1024;",
        "}",
        "http {",
        f"    include {mime_types};",
        "    default_type application/octet-stream;",
        "    server_tokens off;",
        "    access_log /dev/stdout;",
        "    sendfile on;",
        "    keepalive_timeout 65;",
        *(
            f"    {kind}_temp_path {temp_dir}/{kind}_temp;"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
        "    gzip on;",
        "    gzip_vary on;",
        "    gzip_proxied any;",
        "    gzip_min_length 256;",
        f"    gzip_types {' '.join(settings.gzip_types)};",
        "    server {",
        f"        listen {listen};",
        "        server_name _;",
        f"        root {root or settings.root};",
        "        index index.html;",
        # Behind the edge the client never sees port 8080: redirects stay relative.
        "        absolute_redirect off;",
        *_headers(headers, "        "),
    ]
    for path in health:
        lines += _location(f"= {path}", ["access_log off;", "default_type text/plain;", 'return 200 "ok\\n";'])
    # The index is never cached, so a new release is picked up at once.
    lines += _location("= /index.html", ['add_header Cache-Control "no-cache" always;', *_headers(headers, "")])
    if settings.immutable_prefix is not None:
        lines += _location(
            settings.immutable_prefix,
            [
                "try_files $uri =404;",
                'add_header Cache-Control "public, max-age=31536000, immutable" always;',
                *_headers(headers, ""),
            ],
        )
    # Dot files (.git, .env) are never served; /.well-known is.
    lines += _location(r"~ /\.(?!well-known/)", ["deny all;"])
    # The single-page app: a path that is no file is a route of the app.
    lines += _location("/", ["try_files $uri $uri/ /index.html;"])
    lines += ["    }", "}"]
    return "\n".join(lines) + "\n"


def web_files(svc: ServiceSettings) -> dict[str, str]:
    """The files the program ships to the service's pods: nginx.conf for an nginx service, else none."""
    if svc.nginx is None:
        return {}
    return {"nginx.conf": nginx_conf(svc.http_port, svc.nginx, health_paths(svc))}
