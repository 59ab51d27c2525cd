"""PgBouncer in front of PostgreSQL: the connection budget it makes room for, the hardened Deployment and
the NetworkPolicies the program derives for it, and its rendered configuration in Debian's pgbouncer,
as the pod's UID, in front of a real PostgreSQL on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.config import PostgresSettings, connection_budget_problem, load_settings
from components.data.pooler import ready_command
from components.data.server_config import pgbouncer_ini, pgbouncer_userlist
from tests.harness import ProgramRun, raw_stack_value, run_program, stack_config
from tests.test_data_tools import (  # noqa: F401 (fixtures)
    IS_ROOT,
    SERVICE_UID,
    Postgres,
    as_service,
    free_port,
    install,
    pg_bin,
    postgres,
    process_uid,
    run,
    stop,
    system_tools,
)

DATA = "support-data"
APP = "support-app"


def settings_for(stack: str, **overrides: Any) -> Any:
    structured = {key: raw_stack_value(stack, key) for key in ("environment", "target", "edge", "app", "data")}
    structured.update(overrides)
    return load_settings(stack, structured, [], {"llmApiKey": True, "alertWebhookUrl": True})


# --- the budget ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_connections", "fits"), [(158, True), (157, False)])
def test_the_budget_fits_to_the_connection(max_connections: int, fits: bool) -> None:
    # staging at full scale: api 4 + 1 surge pods x 30 = 150, the migration 1, the exporter 1, the nightly
    # backup 1 and 2 for an operator: 155, plus the 3 superuser_reserved_connections.
    data = {"postgres": {"parameters": {"max_connections": max_connections}}}
    if fits:
        settings = settings_for("staging", data=data)
        assert connection_budget_problem(settings) is None
    else:
        with pytest.raises(Exception, match="can open 155 connections to PostgreSQL at full scale"):
            settings_for("staging", data=data)


def test_production_runs_through_the_pooler_by_default_and_it_fits() -> None:
    settings = settings_for("production")
    assert settings.pools_connections()
    assert connection_budget_problem(settings) is None
    assert not settings_for("staging").pools_connections()
    explicit = settings_for("staging", data={"postgres": {"pooler": {"enabled": True}}})
    assert explicit.pools_connections()


# --- what the program deploys --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def production() -> ProgramRun:
    config, secret_keys = stack_config("production")
    result = run_program("production", config, secret_keys)
    assert result.error is None, result.error
    return result


def one(run_: ProgramRun, kind: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in run_.k8s(kind) if r.get("metadata.name") == name and r.get("metadata.namespace") == DATA]
    return found.inputs


def test_pgbouncer_is_a_hardened_deployment_of_the_data_tier(production: ProgramRun) -> None:
    deployment = one(production, "Deployment", "pgbouncer")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["priorityClassName"] == "support-data-stores"
    (container,) = pod["containers"]
    assert container["image"].startswith("ghcr.io/cloudnative-pg/pgbouncer:1.25.1@sha256:")
    assert container["command"] == ["/usr/bin/pgbouncer", "/etc/pgbouncer/config/pgbouncer.ini"]
    security = container["securityContext"]
    assert security["runAsUser"] == 10001 and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]} and security["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    assert container["livenessProbe"]["tcpSocket"] == {"port": "pgbouncer"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["auth"]["secret"] == {"secretName": "pgbouncer-auth", "defaultMode": 0o440}
    assert volumes["config"]["configMap"] == {"name": "pgbouncer-config"}
    ini = one(production, "ConfigMap", "pgbouncer-config")["data"]["pgbouncer.ini"]
    assert "support = host=postgres.support-data.svc.cluster.local port=5432 dbname=support" in ini
    assert "max_db_connections = 25" in ini and "pool_mode = transaction" in ini
    # The password only in the Secret.
    secret = next(r for r in production.k8s("Secret") if r.get("metadata.name") == "pgbouncer-auth")
    assert secret.secret_paths == {"stringData"}
    assert one(production, "PodDisruptionBudget", "pgbouncer")["spec"]["maxUnavailable"] == 1


def _peers(rules: list[dict[str, Any]], key: str) -> list[tuple[str, str]]:
    found = []
    for rule in rules:
        for peer in rule[key]:
            namespace = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            name = peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            found.append((namespace or "same", name))
    return sorted(found)


def test_network_policies_put_pgbouncer_between_the_app_and_postgres(production: ProgramRun) -> None:
    pooler = one(production, "NetworkPolicy", "pgbouncer")["spec"]
    assert _peers(pooler["ingress"], "from") == [(APP, "api"), (APP, "api-migrations")]
    assert _peers(pooler["egress"], "to") == [("same", "postgres")]
    assert pooler["egress"][0]["ports"] == [{"protocol": "TCP", "port": 5432}]
    store = one(production, "NetworkPolicy", "postgres")["spec"]
    clients = [rule for rule in store["ingress"] if rule["ports"][0]["port"] == "postgres"]
    assert _peers(clients, "from") == [(DATA, "pgbouncer"), (DATA, "postgres-backup")]


# --- Debian's pgbouncer in front of the real PostgreSQL ----------------------------------------------------


@dataclass(frozen=True)
class Bouncer:
    port: int
    pid: int
    postgres: Postgres


POOL = 2


@pytest.fixture(scope="module")
def bouncer(postgres: Postgres) -> Iterator[Bouncer]:  # noqa: F811 (the fixture imported above)
    install("pgbouncer=pgbouncer")
    base = Path(tempfile.mkdtemp(prefix="pgb-"))
    base.chmod(0o755)
    server: subprocess.Popen[bytes] | None = None
    try:
        (base / "userlist.txt").write_text(pgbouncer_userlist("postgres", postgres.password))
        # As the kubelet mounts the Secret: mode 0440, group fsGroup.
        (base / "userlist.txt").chmod(0o440)
        if IS_ROOT:
            os.chown(base / "userlist.txt", 0, SERVICE_UID)
        port = free_port()
        ini = pgbouncer_ini(
            "postgres",
            "127.0.0.1",
            auth_file=str(base / "userlist.txt"),
            default_pool_size=POOL,
            reserve_pool_size=0,
            listen_addr="127.0.0.1",
            listen_port=port,
            server_port=postgres.port,
        )
        (base / "pgbouncer.ini").write_text(ini)
        with (base / "pgbouncer.log").open("wb") as log:
            server = subprocess.Popen(
                as_service(["/usr/sbin/pgbouncer", base / "pgbouncer.ini"]), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        ready = [postgres.bindir / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        while run(ready).returncode != 0:
            assert server.poll() is None, (base / "pgbouncer.log").read_text()
            assert time.monotonic() < deadline, (base / "pgbouncer.log").read_text()
            time.sleep(0.1)
        yield Bouncer(port, server.pid, postgres)
    finally:
        if server is not None:
            stop(server, signal.SIGINT)
        shutil.rmtree(base, ignore_errors=True)


def through(bouncer: Bouncer, sql: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = bouncer.postgres.env(PGPORT=str(bouncer.port), PGPASSWORD=password or bouncer.postgres.password)
    flags = ["-X", "-q", "-w", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql]
    return run([bouncer.postgres.bindir / "psql", *flags], env=env)


@pytest.mark.integration
def test_the_app_reaches_postgres_through_pgbouncer_with_its_password(bouncer: Bouncer) -> None:
    if IS_ROOT:
        assert process_uid(bouncer.pid) == SERVICE_UID
    done = through(bouncer, "SELECT current_user, inet_server_port()")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"postgres|{bouncer.postgres.port}"
    refused = through(bouncer, "SELECT 1", password="wrong")
    assert refused.returncode != 0 and "SASL authentication failed" in refused.stderr


@pytest.mark.integration
def test_the_readiness_probe_needs_no_password(bouncer: Bouncer) -> None:
    command = ready_command(PostgresSettings.model_validate({"user": "postgres", "database": "postgres"}), bouncer.port)
    env = {"PATH": f"{bouncer.postgres.bindir}:{os.environ['PATH']}"}
    done = run(as_service(command), env=env)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.integration
def test_postgres_never_sees_more_connections_than_the_pool(bouncer: Bouncer) -> None:
    """Five clients at once; PostgreSQL serves them over at most `defaultPoolSize` connections."""
    env = bouncer.postgres.env(PGPORT=str(bouncer.port))
    psql = [bouncer.postgres.bindir / "psql", "-X", "-q", "-w", "-d", "postgres", "-c", "SELECT pg_sleep(1.5)"]
    clients = [
        subprocess.Popen([str(a) for a in psql], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(5)
    ]
    seen: list[int] = []
    count = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    while any(c.poll() is None for c in clients):
        seen.append(int(bouncer.postgres.value(count)))
        time.sleep(0.1)
    for client in clients:
        assert client.wait(timeout=60) == 0, client.stderr.read() if client.stderr else ""
    # Queued, not refused: all five ran, never more than the pool at once.
    assert max(seen) == POOL, seen
