"""The web tier's nginx.conf: rendered by components/app/web_server.py, shipped in a ConfigMap whose
digest rolls the pods, and run in Debian's nginx on 127.0.0.1 as the pod's UID: the probes' path
answers 200, `/` serves the index, an unknown path falls back to it, the headers are there."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.app.web_server import health_paths, nginx_conf, web_files
from components.config import SECURITY_HEADERS, NginxSettings, load_settings
from tests.harness import ProgramRun, overlay, raw_stack_value, run_program, stack_config
from tests.test_data_tools import as_service, free_port, install, process_uid, stop

IS_ROOT = os.geteuid() == 0
SERVICE_UID = 10001  # the web service's runAsUser
INDEX = "<!doctype html><title>Support</title>" + "<p>the app</p>" * 40
SCRIPT = "console.log('support');\n" * 200


def dev_run(web: dict[str, object] | None = None) -> ProgramRun:
    app = overlay(raw_stack_value("dev", "app"), {"services": {"web": web or {}}})
    config, secret_keys = stack_config("dev", overrides={"app": app})
    run = run_program("dev", config, secret_keys)
    assert run.error is None, run.error
    return run


def test_the_web_pods_get_the_programs_nginx_conf_and_roll_when_it_changes() -> None:
    run = dev_run()
    files = run.by_object_name("ConfigMap", "web-files").inputs["data"]
    assert set(files) == {"nginx.conf"}
    deployment = run.one("kubernetes:apps/v1:Deployment", "web-deployment")
    pod = deployment.inputs["spec"]["template"]["spec"]
    assert {"name": "files", "configMap": {"name": "web-files"}} in pod["volumes"]
    checksum = deployment.inputs["spec"]["template"]["metadata"]["annotations"]
    changed = dev_run({"nginx": {"securityHeaders": {"X-Frame-Options": "SAMEORIGIN"}}})
    assert changed.by_object_name("ConfigMap", "web-files").inputs["data"] != files
    other = changed.one("kubernetes:apps/v1:Deployment", "web-deployment").inputs["spec"]["template"]["metadata"]
    assert other["annotations"] != checksum
    # Nothing else ships files: the api's checksum stays what it was.
    api = run.one("kubernetes:apps/v1:Deployment", "api-deployment").inputs["spec"]["template"]["metadata"]
    assert api == changed.one("kubernetes:apps/v1:Deployment", "api-deployment").inputs["spec"]["template"]["metadata"]
    assert not [r for r in run.k8s("ConfigMap") if r.get("metadata.name") == "api-files"]


def test_the_conf_has_what_the_pod_needs() -> None:
    run = dev_run()
    text = run.by_object_name("ConfigMap", "web-files").inputs["data"]["nginx.conf"]
    lines = [line.strip() for line in text.splitlines()]
    for line in (
        "listen 8080;",
        "server_tokens off;",
        "pid /tmp/nginx.pid;",
        "gzip on;",
        "client_body_temp_path /tmp/client_body_temp;",
        "proxy_temp_path /tmp/proxy_temp;",
        "location = /health {",
        "try_files $uri $uri/ /index.html;",
    ):
        assert line in lines, line
    # The image's nginx is not root: no user directive, every written path on the /tmp emptyDir.
    assert not any(line.startswith("user ") for line in lines)
    written = [line.split()[1].rstrip(";") for line in lines if "_temp_path" in line or line.startswith("pid ")]
    assert written and all(path.startswith("/tmp/") for path in written)
    for name, value in SECURITY_HEADERS.items():
        assert f'add_header {name} "{value}" always;' in lines


def test_health_locations_are_the_probes_paths() -> None:
    structured = {key: raw_stack_value("dev", key) for key in ("environment", "target", "edge", "app")}
    settings = load_settings("dev", structured, [], {})
    # The built-in web's startup and readiness probes ask /health; liveness is a TCP check.
    assert health_paths(settings.app.services["web"]) == ["/health"]
    custom = settings.app.services["web"].model_copy(
        update={"probes": settings.app.services["api"].probes, "nginx": NginxSettings()}
    )
    assert health_paths(custom) == ["/health/liveness", "/health/readiness"]
    assert web_files(settings.app.services["api"]) == {}


@pytest.mark.parametrize(
    "kwargs",
    [{"listen": "localhost:80"}, {"temp_dir": "/tmp/a b"}, {"root": "relative"}, {"health": ["/h;"]}],
)
def test_the_renderer_refuses_what_would_change_the_files_meaning(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"listen": 8080, "settings": NginxSettings(), "health": ["/health"], **kwargs}
    with pytest.raises(ValueError, match=r"nginx\.conf"):
        nginx_conf(**arguments)  # type: ignore[arg-type]


# --- Debian's nginx ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nginx:
    base: Path
    url: str
    pid: int


def fetch(url: str, gzip_ok: bool = False) -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept-Encoding": "gzip"} if gzip_ok else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (127.0.0.1 only)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="module")
def nginx() -> Iterator[Nginx]:
    """Debian's nginx with the rendered file: only the listen address, the temp directory and the
    document root point into a test directory; everything else is what the pod runs."""
    install("nginx=nginx", "setpriv=util-linux")
    base = Path(tempfile.mkdtemp(prefix="ngx-"))
    base.chmod(0o755)
    server: subprocess.Popen[bytes] | None = None
    try:
        html, temp = base / "html", base / "tmp"
        (html / "static").mkdir(parents=True)
        (html / "index.html").write_text(INDEX)
        (html / "static" / "app.3f9a.js").write_text(SCRIPT)
        (html / ".env").write_text("SECRET=1\n")
        temp.mkdir()
        if IS_ROOT:
            os.chown(temp, SERVICE_UID, SERVICE_UID)  # the emptyDir, writable by the pod's UID
        port = free_port()
        conf = base / "nginx.conf"
        conf.write_text(
            nginx_conf(f"127.0.0.1:{port}", NginxSettings(), ["/health"], temp_dir=str(temp), root=str(html))
        )
        # -e: Debian's built-in error log path belongs to root; the file itself logs to stderr.
        command = ["/usr/sbin/nginx", "-e", "stderr", "-c", str(conf), "-g", "daemon off;"]
        # The access log is /dev/stdout: the process's own stdout, which the container runtime gives the
        # pod's user and the test gives the service UID.
        log_path = base / "nginx.log"
        log_path.touch()
        if IS_ROOT:
            os.chown(log_path, SERVICE_UID, SERVICE_UID)
        with log_path.open("ab") as log:
            checked = subprocess.run(as_service([*command[:-2], "-t"]), stdout=log, stderr=log, check=False)
            assert checked.returncode == 0, log_path.read_text()
            server = subprocess.Popen(as_service(command), stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (base / "nginx.log").read_text()
            try:
                fetch(f"{url}/health")
                break
            except OSError:
                assert time.monotonic() < deadline, (base / "nginx.log").read_text()
                time.sleep(0.1)
        yield Nginx(base, url, server.pid)
    finally:
        if server is not None:
            stop(server, signal.SIGQUIT)  # graceful shutdown
        shutil.rmtree(base, ignore_errors=True)


def security_headers_of(headers: dict[str, str]) -> dict[str, str]:
    return {name: headers.get(name, "") for name in SECURITY_HEADERS}


@pytest.mark.integration
def test_nginx_runs_as_the_pods_uid_and_writes_only_to_the_temp_dir(nginx: Nginx) -> None:
    if IS_ROOT:
        assert process_uid(nginx.pid) == SERVICE_UID
    assert {p.name for p in (nginx.base / "tmp").iterdir()} >= {"nginx.pid", "client_body_temp", "proxy_temp"}


@pytest.mark.integration
def test_the_probes_path_answers_200(nginx: Nginx) -> None:
    status, headers, body = fetch(f"{nginx.url}/health")
    assert (status, body) == (200, b"ok\n")
    assert security_headers_of(headers) == SECURITY_HEADERS
    # No version in the Server header.
    assert headers["Server"] == "nginx"


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/", "/index.html", "/conversations/42", "/settings/profile?tab=1"])
def test_the_index_and_every_route_of_the_app_serve_the_index(nginx: Nginx, path: str) -> None:
    status, headers, body = fetch(f"{nginx.url}{path}")
    assert status == 200 and body.decode() == INDEX
    assert headers["Cache-Control"] == "no-cache"
    assert security_headers_of(headers) == SECURITY_HEADERS


@pytest.mark.integration
def test_hashed_assets_are_cached_compressed_and_never_the_index(nginx: Nginx) -> None:
    status, headers, body = fetch(f"{nginx.url}/static/app.3f9a.js", gzip_ok=True)
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body).decode() == SCRIPT
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert security_headers_of(headers) == SECURITY_HEADERS
    missing, headers, _ = fetch(f"{nginx.url}/static/gone.js")
    assert missing == 404 and security_headers_of(headers) == SECURITY_HEADERS


@pytest.mark.integration
def test_dot_files_are_refused(nginx: Nginx) -> None:
    status, headers, body = fetch(f"{nginx.url}/.env")
    assert status == 403 and b"SECRET" not in body
    assert security_headers_of(headers) == SECURITY_HEADERS
