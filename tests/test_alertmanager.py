"""Alertmanager's configuration, proven by Alertmanager's own tools: amtool checks it and tests its
routes, and the real Alertmanager (v0.28.1, the bundled image's version, built from its Go module)
receives each incident's alerts on 127.0.0.1 and shows which it inhibits: one incident, one page."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import MonitoringSettings
from components.monitoring.alertmanager_config import INHIBITIONS, RECEIVERS, alertmanager_config
from tests.test_monitoring_rules import run, tool

WEBHOOK = "https://hooks.example.com/T000/alerts"
SLACK = "https://hooks.slack.com/services/T000/B000/XXXX"
SETTINGS = MonitoringSettings()
# Every receiver kind at once, as a stack that follows 000 would configure them.
NATIVE = MonitoringSettings.model_validate(
    {
        "smtp": {"smarthost": "smtp.example.com:587", "from": "alerts@example.com", "authUsername": "alerts"},
        "receivers": {
            "critical": {
                "webhook": {"urlSecret": "alertWebhookUrl"},
                "slack": {"channel": "#alerts"},
                "email": {"to": ["team@example.com"]},
            },
            "warning": {"email": {"to": ["team@example.com"]}},
        },
    }
)
SECRETS: dict[str, str | None] = {"alertWebhookUrl": WEBHOOK, "slackWebhookUrl": SLACK, "smtpPassword": "pw-0f1e2d"}


def write_alertmanager(directory: Path, settings: MonitoringSettings, secrets: dict[str, str | None]) -> Path:
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(alertmanager_config(settings, secrets), sort_keys=False))
    return path


def test_native_receivers_as_000_names_them() -> None:
    config = alertmanager_config(NATIVE, SECRETS)
    receivers = {r["name"]: r for r in config["receivers"]}
    assert set(receivers) == {"critical-alerts", "warning-alerts", "watchdog"}
    (slack,) = receivers["critical-alerts"]["slack_configs"]
    assert slack == {
        "api_url": SLACK,
        "channel": "#alerts",
        "title": "Critical Alert",
        "text": "{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}",
        "send_resolved": False,
    }
    (mail,) = receivers["warning-alerts"]["email_configs"]
    # 000's `subject` and `body`, in the fields Alertmanager has.
    assert mail["headers"] == {"Subject": "[WARNING] Customer Support Alert"}
    assert mail["text"].splitlines() == [
        "{{ range .Alerts }}",
        "Alert: {{ .Annotations.summary }}",
        "Description: {{ .Annotations.description }}",
        "{{ end }}",
    ]
    assert "subject" not in mail and "body" not in mail
    assert config["global"] == {
        "smtp_smarthost": "smtp.example.com:587",
        "smtp_from": "alerts@example.com",
        "smtp_require_tls": True,
        "smtp_auth_username": "alerts",
        "smtp_auth_password": "pw-0f1e2d",
    }
    route = config["route"]
    assert (route["group_by"], route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        ["alertname"],
        "10s",
        "10s",
        "1h",
    )
    # In dev the secrets may be unset: the parts that need them are left out, nothing breaks.
    dev = alertmanager_config(NATIVE, dict.fromkeys(SECRETS))
    parts = {k for r in dev["receivers"] for k in r if k != "name"}
    assert parts == {"email_configs"} and "smtp_auth_password" not in dev["global"]


def test_inhibitions_never_mute_the_watchdog_or_a_source_itself() -> None:
    for rule in INHIBITIONS:
        assert rule.why
        targets = dict(((label, op), value) for label, op, value in rule.target)
        assert targets.get(("severity", "=~"), targets.get(("severity", "="), "")) != "none"
        assert ("alertname", "=", "Watchdog") not in rule.target


@pytest.mark.integration
@pytest.mark.parametrize(
    ("settings", "secrets"),
    [(SETTINGS, SECRETS), (SETTINGS, dict.fromkeys(SECRETS)), (NATIVE, SECRETS)],
    ids=["webhook", "unset-dev", "slack-and-email"],
)
def test_amtool_check_config(tmp_path: Path, settings: MonitoringSettings, secrets: dict[str, str | None]) -> None:
    proc = run(tool("amtool"), "check-config", str(write_alertmanager(tmp_path, settings, secrets)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.integration
def test_amtool_refuses_000s_email_fields_as_written(tmp_path: Path) -> None:
    config = alertmanager_config(NATIVE, SECRETS)
    mail = config["receivers"][0]["email_configs"][0]
    mail["subject"] = "[CRITICAL] Customer Support Alert"
    mail["body"] = mail.pop("text")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    proc = run(tool("amtool"), "check-config", str(path))
    assert proc.returncode != 0
    assert "field subject not found" in proc.stdout + proc.stderr


@pytest.mark.integration
@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=ServiceDown", "severity=critical", "namespace=support-app"], RECEIVERS["critical"]),
        (["alertname=HighResponseTime", "severity=warning", "namespace=support-app"], RECEIVERS["warning"]),
        (["alertname=DiskSpaceLow", "severity=critical", "instance=10.0.0.7:9100"], RECEIVERS["critical"]),
        (["alertname=Watchdog", "severity=none"], RECEIVERS["watchdog"]),
        (["alertname=SomethingNew"], RECEIVERS["warning"]),
    ],
)
def test_amtool_routes(tmp_path: Path, labels: list[str], receiver: str) -> None:
    path = write_alertmanager(tmp_path, NATIVE, SECRETS)
    proc = run(tool("amtool"), "config", "routes", "test", f"--config.file={path}", *labels)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receiver


# --- the real Alertmanager: what one incident notifies --------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _request(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (127.0.0.1 only)
        text = response.read().decode()
    return json.loads(text) if text else None


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A fresh Alertmanager per incident (inhibition is global to it), on a free port of 127.0.0.1."""
    # Webhooks to a port nobody listens on: notifications fail, which inhibition does not care about.
    config = write_alertmanager(tmp_path, SETTINGS, {**SECRETS, "alertWebhookUrl": "http://127.0.0.1:9/"})
    port = free_port()
    args = [
        tool("alertmanager"),
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    with (tmp_path / "alertmanager.log").open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=2)  # noqa: S310 (127.0.0.1 only)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "alertmanager.log").read_text()
                time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


API = {"namespace": "support-app", "service": "api"}
PG = {"namespace": "support-data", "service": "postgres"}
DISK = {"instance": "10.0.0.7:9100", "device": "/dev/sda1", "mountpoint": "/"}
# incident -> (alerts as Prometheus would send them, the alerts left to notify)
INCIDENTS: dict[str, tuple[list[dict[str, str]], set[str]]] = {
    "one api pod of three down": (
        [
            {"alertname": "ServiceDown", "severity": "critical", **API, "pod": "api-1", "instance": "10.1.0.5:8000"},
            {"alertname": "AvailabilityErrorBudgetBurn", "severity": "critical", **API, "slo": "availability"},
            {"alertname": "AvailabilityErrorBudgetBurn", "severity": "warning", **API, "slo": "availability"},
            {"alertname": "HighErrorRate", "severity": "warning", **API},
        ],
        {"ServiceDown/critical"},
    ),
    "PostgreSQL down": (
        [
            {"alertname": "PostgresDown", "severity": "critical", **PG},
            {"alertname": "ErrorsErrorBudgetBurn", "severity": "critical", **API, "slo": "errors"},
            {"alertname": "LatencyErrorBudgetBurn", "severity": "critical", **API, "slo": "latency"},
            {"alertname": "HighErrorRate", "severity": "warning", **API},
            {"alertname": "Watchdog", "severity": "none"},
        ],
        {"PostgresDown/critical", "Watchdog/none"},
    ),
    "the PostgreSQL pod gone, exporter and all": (
        [
            {"alertname": "ServiceDown", "severity": "critical", **PG, "pod": "postgres-0", "instance": "x:9187"},
            {"alertname": "ErrorsErrorBudgetBurn", "severity": "critical", **API, "slo": "errors"},
            {"alertname": "HighResponseTime", "severity": "warning", **API},
        ],
        {"ServiceDown/critical"},
    ),
    "the api's errors burn the budget": (
        [
            {"alertname": "ErrorsErrorBudgetBurn", "severity": "critical", **API, "slo": "errors"},
            {"alertname": "ErrorsErrorBudgetBurn", "severity": "warning", **API, "slo": "errors"},
            {"alertname": "HighErrorRate", "severity": "warning", **API},
        ],
        {"ErrorsErrorBudgetBurn/critical"},
    ),
    "a node's disk fills": (
        [
            {"alertname": "DiskSpaceLow", "severity": "critical", **DISK},
            {"alertname": "DiskSpaceHigh", "severity": "warning", **DISK},
        ],
        {"DiskSpaceLow/critical"},
    ),
    "two unrelated problems stay two": (
        [
            {"alertname": "ServiceDown", "severity": "critical", **API, "pod": "api-1", "instance": "10.1.0.5:8000"},
            {"alertname": "RedisMemoryHigh", "severity": "warning", "namespace": "support-data", "service": "redis"},
            {"alertname": "RAGQueryFailureRate", "severity": "warning", "namespace": "support-app", "service": "mcp"},
        ],
        {"ServiceDown/critical", "RedisMemoryHigh/warning", "RAGQueryFailureRate/warning"},
    ),
}


@pytest.mark.integration
@pytest.mark.parametrize("incident", list(INCIDENTS))
def test_one_incident_pages_once(alertmanager: str, incident: str) -> None:
    alerts, left = INCIDENTS[incident]
    now = datetime.now(UTC)
    _request(
        f"{alertmanager}/api/v2/alerts",
        [
            {"labels": labels, "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat()}
            for labels in alerts
        ],
    )
    deadline = time.monotonic() + 30
    while True:
        found = _request(f"{alertmanager}/api/v2/alerts?active=true&inhibited=true&silenced=true&unprocessed=true")
        states = {f"{a['labels']['alertname']}/{a['labels']['severity']}": a["status"]["state"] for a in found}
        active = {name for name, state in states.items() if state == "active"}
        settled = len(found) == len(alerts) and "unprocessed" not in states.values()
        if settled and active == left:
            break
        assert time.monotonic() < deadline, f"active {sorted(active)}, expected {sorted(left)}; states {states}"
        time.sleep(0.2)
    pages = [name for name in active if name.endswith("/critical")]
    assert len(pages) <= 1 or incident == "two unrelated problems stay two"
    # Whatever is muted names what muted it.
    for alert in found:
        if alert["status"]["state"] == "suppressed":
            assert alert["status"]["inhibitedBy"], alert["labels"]
