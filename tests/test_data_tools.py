"""The data tier's configs and tools on the real servers: PostgreSQL and Redis load what
components/data/server_config.py renders, and components/data/files/pg-backup.sh backs up, verifies and
restore-checks a real database. Servers run as the pods' unprivileged UID on 127.0.0.1, in volumes laid
out the way Kubernetes mounts a PVC with fsGroup; Debian packages are installed on first use."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.config import PostgresSettings, quantity_bytes
from components.data.postgres import PORT, ROLE_SYNC_HOOK, query_command
from components.data.server_config import (
    pg_hba_conf,
    postgresql_conf,
    redis_auth_conf,
    redis_conf,
)

# Starts real processes (servers, the analyzer): `make integration`, not the fast loop.
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
BACKUP_SCRIPT = ROOT / "components" / "data" / "files" / "pg-backup.sh"
SERVICE_UID = 10001  # runAsUser, runAsGroup and fsGroup of the data tier's pods
IS_ROOT = os.geteuid() == 0
# Who runs the servers: the pods' UID and GID, or without root the current user.
RUN_UID, RUN_GID = (SERVICE_UID, SERVICE_UID) if IS_ROOT else (os.geteuid(), os.getegid())
NSS_WRAPPER_GLOB = ("/usr/lib/*/libnss_wrapper.so", "/usr/lib/libnss_wrapper.so", "/lib/*/libnss_wrapper.so")
DUMP_NAME = re.compile(r"^app-\d{8}T\d{6}Z(-[A-Za-z0-9._-]+)?\.dump$")


# --- the pure renderers ------------------------------------------------------------------------------


def test_postgresql_conf_has_the_platform_base_then_the_tuning() -> None:
    text = postgresql_conf({"max_connections": 123, "shared_buffers": "64MB", "wal_level": "replica"})
    lines = text.splitlines()
    for line in (
        "listen_addresses = '*'",
        "port = 5432",
        "logging_collector = off",
        "log_destination = 'stderr'",
        "unix_socket_directories = '/var/run/postgresql'",
        "hba_file = '/etc/postgresql/pg_hba.conf'",
        "max_connections = 123",
        "shared_buffers = '64MB'",
        "wal_level = 'replica'",
    ):
        assert line in lines, line
    assert "data_directory" not in text
    assert lines.index("max_connections = 123") > lines.index("listen_addresses = '*'")


def test_postgresql_conf_quotes_strings_and_leaves_numbers_bare() -> None:
    text = postgresql_conf(
        {"cluster_name": "it's a \\ test", "random_page_cost": 1.1, "jit": False, "work_mem": 4096},
        hba_file="/mnt/hba.conf",
    )
    assert "cluster_name = 'it''s a \\\\ test'" in text
    assert "random_page_cost = 1.1" in text
    assert "jit = off" in text
    assert "work_mem = 4096" in text
    assert "hba_file = '/mnt/hba.conf'" in text


def test_postgresql_conf_parameters_override_the_logging_defaults_once() -> None:
    text = postgresql_conf({"log_min_duration_statement": 250})
    assert text.count("log_min_duration_statement") == 1
    assert "log_min_duration_statement = 250" in text
    assert "log_min_duration_statement = 1000" in postgresql_conf({})


@pytest.mark.parametrize("name", ["Max_Connections", "1abc", "work mem", "a=b", "", "x;y", "shared-buffers"])
def test_postgresql_conf_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid parameter name"):
        postgresql_conf({name: 1})


@pytest.mark.parametrize("name", ["port", "listen_addresses", "hba_file", "data_directory", "password_encryption"])
def test_postgresql_conf_rejects_the_platform_s_fixed_settings(name: str) -> None:
    with pytest.raises(ValueError, match="fixed by the platform"):
        postgresql_conf({name: "x"})


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", float("nan"), float("inf")])
def test_postgresql_conf_rejects_values_the_file_cannot_hold(value: str | float) -> None:
    with pytest.raises(ValueError):
        postgresql_conf({"cluster_name": value})


def test_pg_hba_conf_asks_for_scram_over_tcp_and_trusts_the_pod_private_socket() -> None:
    rules = [line.split() for line in pg_hba_conf().splitlines() if line and not line.startswith("#")]
    assert rules == [
        ["local", "all", "all", "trust"],
        ["host", "all", "all", "0.0.0.0/0", "scram-sha-256"],
        ["host", "all", "all", "::/0", "scram-sha-256"],
    ]
    restricted = pg_hba_conf(["10.42.0.0/16", "10.42.0.0/16", "fd00::/8"])
    assert restricted.count("10.42.0.0/16") == 1 and "fd00::/8" in restricted


@pytest.mark.parametrize("cidrs", [[], ["10.0.0.1/8"], ["not-a-cidr"], ["10.0.0.0/33"], "10.0.0.0/8"])
def test_pg_hba_conf_rejects_bad_cidrs(cidrs: Sequence[str]) -> None:
    with pytest.raises(ValueError):
        pg_hba_conf(cidrs)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("256Mi", 256 * 1024 * 1024),
        ("1Gi", 1024**3),
        ("1.5Gi", 1536 * 1024 * 1024),
        ("512M", 512_000_000),
        ("1k", 1000),
        ("64Ki", 65536),
        ("1048576", 1048576),
    ],
)
def test_quantity_bytes(quantity: str, expected: int) -> None:
    assert quantity_bytes(quantity) == expected


@pytest.mark.parametrize("quantity", ["256m", "256mb", "256MB", "1K", "0", "0Mi", "", "-1Mi", "1.5", "1e3", " 1Mi"])
def test_quantity_bytes_rejects_what_kubernetes_would_not_mean_as_memory(quantity: str) -> None:
    with pytest.raises(ValueError):
        quantity_bytes(quantity)


def test_redis_conf_takes_the_password_from_the_include_only() -> None:
    text = redis_conf("256Mi", "allkeys-lru", renamed_commands=("flushall", "CONFIG", "CONFIG"))
    lines = text.splitlines()
    for line in (
        "bind 0.0.0.0",
        "protected-mode yes",
        "port 6379",
        "dir /data",
        "appendonly yes",
        'appendfilename "appendonly.aof"',
        "appendfsync everysec",
        "aof-use-rdb-preamble yes",
        "maxmemory 268435456",
        "maxmemory-policy allkeys-lru",
        'rename-command FLUSHALL ""',
        'rename-command CONFIG ""',
    ):
        assert line in lines, line
    assert lines.count('rename-command CONFIG ""') == 1
    assert lines[-1] == "include /etc/redis/auth/auth.conf"
    assert "requirepass" not in text
    default = redis_conf("1Gi", "noeviction").splitlines()
    assert [line.split()[1] for line in default if line.startswith("rename-command")] == [
        "FLUSHALL",
        "FLUSHDB",
        "CONFIG",
        "DEBUG",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"maxmemory": "256mb"},
        {"maxmemory_policy": "lru"},
        {"appendfsync": "sometimes"},
        {"renamed_commands": ("FLUSH ALL",)},
        {"renamed_commands": "CONFIG"},
        {"auth_include": "auth.conf"},
        {"auth_include": "/etc/redis/my auth.conf"},
        {"data_dir": "data"},
    ],
)
def test_redis_conf_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"maxmemory": "256Mi", "maxmemory_policy": "allkeys-lru", **kwargs}
    with pytest.raises(ValueError):
        redis_conf(**arguments)


def test_redis_auth_conf() -> None:
    assert redis_auth_conf("s3cr3t-Pa$$w0rd\\x") == "requirepass s3cr3t-Pa$$w0rd\\x\n"


@pytest.mark.parametrize("password", ["", "a b", 'a"b', "a'b", "a\nb", "a\tb", "a\x00b", "a\u00a0b"])
def test_redis_auth_conf_rejects_passwords_redis_would_misread(password: str) -> None:
    with pytest.raises(ValueError):
        redis_auth_conf(password)


# --- tools and processes -----------------------------------------------------------------------------


def run(
    args: Sequence[str | Path], env: dict[str, str] | None = None, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, env=env, timeout=timeout, cwd=cwd
    )


def as_service(args: Sequence[str | Path]) -> list[str]:
    """The command as the pods run it: runAsUser/runAsGroup SERVICE_UID, fsGroup a supplementary group.
    PostgreSQL refuses to run as root; without root the current user stands in."""
    if not IS_ROOT:
        return [str(a) for a in args]
    ids = [f"--reuid={SERVICE_UID}", f"--regid={SERVICE_UID}", f"--groups={SERVICE_UID}"]
    return ["setpriv", *ids, *(str(a) for a in args)]


def fsgroup_volume(path: Path) -> Path:
    """A directory as the kubelet mounts a volume with fsGroup: root-owned, group fsGroup, setgid, 2775."""
    path.mkdir()
    if IS_ROOT:
        os.chown(path, 0, SERVICE_UID)
    path.chmod(0o2775)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def short_tmpdir(prefix: str) -> Path:
    # Short (Unix socket paths are limited to ~100 bytes) and traversable by the service UID,
    # unlike pytest's per-user 0700 base.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def process_uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:")))


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def postgres_bindir() -> Path | None:
    """Debian keeps the server in /usr/lib/postgresql/<major>/bin, off PATH: the newest major there,
    else what pg_config reports, else PATH."""
    majors = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if majors:
        return majors[-1].parent
    if shutil.which("pg_config"):
        bindir = Path(run(["pg_config", "--bindir"]).stdout.strip())
        if (bindir / "postgres").exists():
            return bindir
    found = shutil.which("postgres")
    return Path(found).resolve().parent if found else None


def has_passwd_entry(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def nss_wrapper() -> Path | None:
    return next((Path(p) for pattern in NSS_WRAPPER_GLOB for p in sorted(Path("/").glob(pattern[1:]))), None)


def install(*pairs: str) -> None:
    """COMMAND=PACKAGE pairs installed on first use, never skipped: without root or apt-get,
    system-deps.sh says what is missing."""
    proc = run([ROOT / "scripts" / "system-deps.sh", *pairs], timeout=600)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="session")
def system_tools() -> None:
    """Installed on first use, never skipped: without root or apt-get, system-deps.sh says what is missing."""
    pairs = ["redis-server=redis-server", "redis-cli=redis-tools", "setpriv=util-linux"]
    if postgres_bindir() is None:
        pairs.append("postgres=postgresql")  # a name off PATH on Debian: asked for only when the glob finds nothing
    if not has_passwd_entry(RUN_UID) and nss_wrapper() is None:
        pairs.append("libnss_wrapper.so=libnss-wrapper")  # a library, no command: asked for only when absent
    install(*pairs)


@pytest.fixture(scope="session")
def pg_bin(system_tools: None) -> Path:
    bindir = postgres_bindir()
    assert bindir is not None, "no PostgreSQL server binaries after installing postgresql"
    return bindir


# --- PostgreSQL --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Postgres:
    base: Path
    volume: Path
    pgdata: Path
    socket_dir: Path
    port: int
    password: str
    pid: int
    bindir: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": f"{self.bindir}:{os.environ['PATH']}",
            "HOME": str(self.base),
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": "postgres",
            "PGPASSWORD": self.password,
            "PGDATABASE": "postgres",
            "PGCONNECT_TIMEOUT": "5",
            **extra,
        }

    def psql(self, sql: str, database: str = "postgres", **env: str) -> subprocess.CompletedProcess[str]:
        flags = ["-X", "-q", "-w", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        return run([self.bindir / "psql", *flags, "-d", database, "-c", sql], env=self.env(**env))

    def value(self, sql: str, database: str = "postgres") -> str:
        proc = self.psql(sql, database)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()


def nss_wrapper_env(base: Path) -> dict[str, str]:
    """What the postgres image's entrypoint does for a UID without a passwd entry, which initdb insists on."""
    if has_passwd_entry(RUN_UID):
        return {}
    wrapper = nss_wrapper()
    assert wrapper is not None, "libnss-wrapper is not installed"
    (base / "passwd").write_text(f"postgres:x:{RUN_UID}:{RUN_GID}:PostgreSQL:{base}:/bin/false\n")
    (base / "group").write_text(f"postgres:x:{RUN_GID}:\n")
    return {
        "LD_PRELOAD": str(wrapper),
        "NSS_WRAPPER_PASSWD": str(base / "passwd"),
        "NSS_WRAPPER_GROUP": str(base / "group"),
    }


def initdb(bindir: Path, base: Path, pgdata: Path, password: str) -> subprocess.CompletedProcess[str]:
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o644)
    try:
        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **nss_wrapper_env(base)}
        flags = ["-U", "postgres", f"--pwfile={pwfile}", "-E", "UTF8", "--auth=scram-sha-256", "--no-sync"]
        return run(as_service([bindir / "initdb", "-D", pgdata, *flags]), env=env, timeout=120)
    finally:
        pwfile.unlink()


@pytest.fixture(scope="module")
def postgres(pg_bin: Path) -> Iterator[Postgres]:
    """initdb and the server as SERVICE_UID: PGDATA a subdirectory of an fsGroup volume, the config and
    pg_hba.conf rendered by components/data/server_config.py read from a read-only "ConfigMap" directory."""
    base = short_tmpdir("pgt-")
    proc: subprocess.Popen[bytes] | None = None
    try:
        volume = fsgroup_volume(base / "vol")
        pgdata = volume / "pgdata"
        socket_dir = fsgroup_volume(base / "run")  # an emptyDir for /var/run/postgresql
        config = base / "config"
        config.mkdir()
        (config / "pg_hba.conf").write_text(pg_hba_conf())
        parameters: dict[str, str | int | float] = {
            "max_connections": 123,
            "shared_buffers": "64MB",
            "cluster_name": "support's \\ data",
        }
        (config / "postgresql.conf").write_text(postgresql_conf(parameters, hba_file=str(config / "pg_hba.conf")))
        password = secrets.token_urlsafe(18)
        init = initdb(pg_bin, base, pgdata, password)
        assert init.returncode == 0, init.stdout + init.stderr
        port = free_port()
        # The file as the pod gets it, then overrides for the test only: loopback, a free port, our socket dir.
        settings = {
            "config_file": str(config / "postgresql.conf"),
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(socket_dir),
        }
        args: list[str | Path] = [
            pg_bin / "postgres",
            "-D",
            pgdata,
            *(f"--{name}={value}" for name, value in settings.items()),
        ]
        with (base / "server.log").open("wb") as log:
            proc = subprocess.Popen(as_service(args), stdout=log, stderr=subprocess.STDOUT, env={"LANG": "C.UTF-8"})
        deadline = time.monotonic() + 30
        ready: list[str | Path] = [pg_bin / "pg_isready", "-q", "-U", "postgres", "-h", "127.0.0.1", "-p", str(port)]
        while run(ready).returncode != 0:
            assert proc.poll() is None, (base / "server.log").read_text()
            assert time.monotonic() < deadline, (base / "server.log").read_text()
            time.sleep(0.1)
        yield Postgres(base, volume, pgdata, socket_dir, port, password, proc.pid, pg_bin)
    finally:
        if proc is not None:
            stop(proc, signal.SIGINT)  # fast shutdown
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_runs_unprivileged_with_pgdata_inside_an_fsgroup_volume(postgres: Postgres) -> None:
    if not IS_ROOT:
        pytest.skip("ownership and UIDs can only be arranged as root")
    assert process_uid(postgres.pid) == SERVICE_UID
    volume = postgres.volume.stat()
    assert (volume.st_uid, volume.st_gid, oct(volume.st_mode & 0o7777)) == (0, SERVICE_UID, "0o2775")
    pgdata = postgres.pgdata.stat()
    # Created by the service UID inside the volume: its own, 0700 as initdb and the server insist.
    assert (pgdata.st_uid, pgdata.st_gid, oct(pgdata.st_mode & 0o777)) == (SERVICE_UID, SERVICE_UID, "0o700")
    assert postgres.value("SHOW data_directory") == str(postgres.pgdata)


def test_initdb_refuses_pgdata_at_the_root_of_an_fsgroup_volume(pg_bin: Path) -> None:
    """Why PGDATA is a subdirectory: the mount point belongs to root, and initdb must own PGDATA (0700)."""
    if not IS_ROOT:
        pytest.skip("ownership and UIDs can only be arranged as root")
    base = short_tmpdir("pgt-")
    try:
        volume = fsgroup_volume(base / "vol")
        proc = initdb(pg_bin, base, volume, "unused")
        assert proc.returncode != 0
        assert "could not change permissions" in proc.stderr, proc.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_loads_the_rendered_config(postgres: Postgres) -> None:
    assert postgres.value("SHOW max_connections") == "123"
    assert postgres.value("SHOW shared_buffers") == "64MB"
    assert postgres.value("SHOW password_encryption") == "scram-sha-256"
    assert postgres.value("SHOW logging_collector") == "off"
    assert postgres.value("SHOW log_destination") == "stderr"
    assert postgres.value("SHOW cluster_name") == "support's \\ data"  # the quoting, read back by the server
    assert postgres.value("SHOW hba_file").endswith("/config/pg_hba.conf")
    assert postgres.value("SHOW config_file").endswith("/config/postgresql.conf")


def test_password_login_is_scram_and_a_wrong_password_is_refused(postgres: Postgres) -> None:
    assert postgres.value("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'postgres'") == "t"
    refused = postgres.psql("SELECT 1", PGPASSWORD="wrong")
    assert refused.returncode != 0
    assert 'password authentication failed for user "postgres"' in refused.stderr


def test_the_socket_trusts_the_pods_own_processes_and_tcp_needs_the_password(postgres: Postgres) -> None:
    """As the pod's UID, as the postStart hook and an exec probe run them (without the entrypoint's nss_wrapper)."""
    env = postgres.env(PGHOST=str(postgres.socket_dir))
    del env["PGPASSWORD"]
    login = run(as_service([postgres.bindir / "psql", "-X", "-w", "-c", "SELECT 1"]), env=env)
    assert login.returncode == 0, login.stderr
    tcp = {**env, "PGHOST": "127.0.0.1"}
    refused = run(as_service([postgres.bindir / "psql", "-X", "-w", "-c", "SELECT 1"]), env=tcp)
    assert refused.returncode != 0 and "no password supplied" in refused.stderr
    probe = run(
        as_service([postgres.bindir / "pg_isready", "-h", postgres.socket_dir, "-p", str(postgres.port)]), env=env
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr


def sync_role(postgres: Postgres, password: str | None) -> subprocess.CompletedProcess[str]:
    """The postStart hook as the pod runs it, with the Secret's password file (None: no file)."""
    password_file = postgres.base / "credentials" / "password"
    password_file.parent.mkdir(exist_ok=True)
    password_file.parent.chmod(0o755)
    password_file.unlink(missing_ok=True)
    if password is not None:
        password_file.write_text(password)  # as the kubelet writes a Secret key: no trailing newline
        password_file.chmod(0o644)
    env = {
        "PATH": f"{postgres.bindir}:{os.environ['PATH']}",
        "HOME": str(postgres.base),
        "PGHOST": str(postgres.socket_dir),
        "PGPORT": str(postgres.port),
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD_FILE": str(password_file),
    }
    return run(as_service(["/bin/sh", "-c", ROLE_SYNC_HOOK]), env=env)


def test_the_poststart_hook_sets_a_rotated_password_again(postgres: Postgres) -> None:
    """The image applies the password file at initdb only; after a rotation the hook makes the role match."""
    rotated = secrets.token_urlsafe(18)

    def sync(password: str) -> subprocess.CompletedProcess[str]:
        return sync_role(postgres, password)

    try:
        done = sync(rotated)
        assert done.returncode == 0, done.stdout + done.stderr
        assert postgres.psql("SELECT 1", PGPASSWORD=rotated).returncode == 0
        old = postgres.psql("SELECT 1")
        assert old.returncode != 0 and "password authentication failed" in old.stderr
    finally:
        restored = sync(postgres.password)
        assert restored.returncode == 0, restored.stderr
    assert postgres.value("SELECT 1") == "1"


@pytest.mark.parametrize(("right", "returncode"), [(True, 0), (False, 2)])
def test_the_readiness_query_logs_in_with_the_password_file(postgres: Postgres, right: bool, returncode: int) -> None:
    password_file = postgres.base / "ready-password"
    password_file.write_text(postgres.password if right else "wrong")
    password_file.chmod(0o644)
    shell, flag, command = query_command(PostgresSettings.model_validate({"user": "postgres", "database": "postgres"}))
    assert f"--port={PORT}" in command
    command = command.replace(f"--port={PORT}", f"--port={postgres.port}")
    env = {"PATH": f"{postgres.bindir}:{os.environ['PATH']}", "POSTGRES_PASSWORD_FILE": str(password_file)}
    done = run(as_service([shell, flag, command]), env=env)
    assert done.returncode == returncode, done.stderr
    assert postgres.password not in done.stdout + done.stderr


@pytest.mark.parametrize("password", [None, ""])
def test_the_poststart_hook_never_sets_an_empty_password(postgres: Postgres, password: str | None) -> None:
    done = sync_role(postgres, password)
    assert done.returncode == 1 and "no password in POSTGRES_PASSWORD_FILE" in done.stderr
    assert postgres.value("SELECT 1") == "1"  # the role still has its password


def test_pg_isready_as_a_uid_without_passwd_entry_needs_a_user_name(postgres: Postgres) -> None:
    """libpq takes the default user name from passwd; without an entry pg_isready does not even try (exit 3).
    The probe passes -U (or the container sets PGUSER)."""
    if has_passwd_entry(RUN_UID):
        pytest.skip("the UID running the tests has a passwd entry")
    env = {k: v for k, v in postgres.env().items() if k not in {"PGUSER", "PGPASSWORD"}}
    where = ["-h", "127.0.0.1", "-p", str(postgres.port)]
    assert run(as_service([postgres.bindir / "pg_isready", *where]), env=env).returncode == 3
    assert run(as_service([postgres.bindir / "pg_isready", "-U", "postgres", *where]), env=env).returncode == 0


# --- pg-backup.sh ------------------------------------------------------------------------------------

SEED = """
CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL);
INSERT INTO customers (email) SELECT 'user' || n || '@example.com' FROM generate_series(1, 1500) AS n;
CREATE TABLE tickets (id serial PRIMARY KEY, customer_id int REFERENCES customers (id), body text);
INSERT INTO tickets (customer_id, body) SELECT n, repeat('x', n) FROM generate_series(1, 37) AS n;
CREATE TABLE "Ticket Notes" (note text);
INSERT INTO "Ticket Notes" VALUES ('one'), ('two');
CREATE TABLE empty_table (id int);
CREATE SCHEMA audit;
CREATE TABLE audit.events (at timestamptz DEFAULT now());
INSERT INTO audit.events SELECT now() FROM generate_series(1, 5);
"""
SEEDED_COUNTS = {
    "public.customers": 1500,
    "public.tickets": 37,
    'public."Ticket Notes"': 2,
    "public.empty_table": 0,
    "audit.events": 5,
}


@pytest.fixture(scope="module")
def app_database(postgres: Postgres) -> str:
    assert postgres.psql("CREATE DATABASE app").returncode == 0
    seed = postgres.psql(SEED, "app")
    assert seed.returncode == 0, seed.stderr
    return "app"


def scratch_dir(postgres: Postgres, prefix: str) -> Path:
    """A directory the service UID can reach (pytest's tmp_path sits under a 0700 directory of root's)."""
    path = Path(tempfile.mkdtemp(dir=postgres.base, prefix=prefix))
    path.chmod(0o755)
    return path


def backup_dir(postgres: Postgres, prefix: str) -> Path:
    return fsgroup_volume(scratch_dir(postgres, prefix) / "backups")


def pg_backup(postgres: Postgres, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The script as the backup CronJob would run it: the service UID, libpq's environment, and a copy
    the service UID can read, as the pod's ConfigMap mount is (the clone may sit under a 0700 directory)."""
    script = postgres.base / BACKUP_SCRIPT.name
    if not script.exists():
        shutil.copyfile(BACKUP_SCRIPT, script)
        script.chmod(0o555)
    environment = postgres.env(**{"PGDATABASE": "app", **env})
    return run(as_service(["sh", script, *args]), env=environment, timeout=120)


def dumps(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.dump"))


@pytest.fixture(scope="module")
def backup(postgres: Postgres, app_database: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    directory = backup_dir(postgres, "backup-")
    proc = pg_backup(postgres, "backup", BACKUP_DIR=str(directory))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (dump,) = dumps(directory)
    return dump, proc


def test_backup_writes_a_verified_dump_a_checksum_and_a_log_line(
    postgres: Postgres, backup: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    dump, proc = backup
    assert DUMP_NAME.match(dump.name), dump.name
    digest = hashlib.sha256(dump.read_bytes()).hexdigest()
    assert Path(f"{dump}.sha256").read_text() == f"{digest}  {dump.name}\n"
    check = run(["sha256sum", "-c", f"{dump.name}.sha256"], cwd=dump.parent)
    assert check.returncode == 0, check.stdout + check.stderr
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    record = json.loads((dump.parent / "backups.log").read_text().splitlines()[-1])
    assert record == {
        "timestamp": dump.name.removeprefix("app-").removesuffix(".dump"),
        "database": "app",
        "file": dump.name,
        "size": dump.stat().st_size,
        "sha256": digest,
        "label": None,
    }
    assert json.loads((dump.parent / "latest.json").read_text()) == record
    assert sorted(p.name for p in dump.parent.iterdir()) == sorted(
        [dump.name, f"{dump.name}.sha256", "backups.log", "latest.json"]
    )
    assert f"backup: OK {dump.name}" in proc.stdout
    if IS_ROOT:
        assert dump.stat().st_uid == SERVICE_UID


def test_a_labelled_backup(postgres: Postgres, app_database: str) -> None:
    directory = backup_dir(postgres, "label-")
    proc = pg_backup(postgres, "backup", BACKUP_DIR=str(directory), BACKUP_LABEL="pre-migration")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (dump,) = dumps(directory)
    assert dump.name.endswith("Z-pre-migration.dump")
    assert json.loads((directory / "latest.json").read_text())["label"] == "pre-migration"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RETENTION_DAYS": "0"}, "RETENTION_DAYS 0 would keep no history"),
        ({"RETENTION_DAYS": "000"}, "RETENTION_DAYS 0 would keep no history"),
        ({"RETENTION_DAYS": "1.5"}, "is not a whole number of days"),
        ({"RETENTION_DAYS": "-3"}, "is not a whole number of days"),
        ({"RETENTION_DAYS": "seven"}, "is not a whole number of days"),
        ({"BACKUP_LABEL": "pre migration"}, "BACKUP_LABEL"),
        ({"BACKUP_LABEL": "../x"}, "BACKUP_LABEL"),
        ({"PGDATABASE": "app;drop"}, "PGDATABASE"),
        ({"BACKUP_DIR": ""}, "BACKUP_DIR is not set"),
    ],
)
def test_backup_refuses_bad_settings_before_dumping(postgres: Postgres, env: dict[str, str], message: str) -> None:
    directory = backup_dir(postgres, "bad-")
    proc = pg_backup(postgres, "backup", **{"BACKUP_DIR": str(directory), **env})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert list(directory.iterdir()) == []


@pytest.mark.parametrize(
    ("env", "message"),
    [({"PGPASSWORD": "wrong"}, "password authentication failed"), ({"PGDATABASE": "missing"}, "does not exist")],
)
def test_a_failed_backup_leaves_nothing_behind(
    postgres: Postgres, app_database: str, env: dict[str, str], message: str
) -> None:
    directory = backup_dir(postgres, "fail-")
    proc = pg_backup(postgres, "backup", BACKUP_DIR=str(directory), **env)
    assert proc.returncode == 1
    assert message in proc.stderr and "pg_dump failed" in proc.stderr
    assert list(directory.iterdir()) == []


def fake_dump(directory: Path, name: str, age_days: float) -> Path:
    path = directory / name
    path.write_bytes(b"PGDMP fake")
    Path(f"{path}.sha256").write_text(f"{'0' * 64}  {name}\n")
    stamp = time.time() - age_days * 86400
    for file in (path, Path(f"{path}.sha256")):
        os.utime(file, (stamp, stamp))
    return path


def test_backup_prunes_dumps_older_than_the_retention_and_nothing_else(postgres: Postgres, app_database: str) -> None:
    directory = backup_dir(postgres, "prune-")
    old = [fake_dump(directory, f"app-2020010{d}T000000Z.dump", 10 + d) for d in range(1, 4)]
    labelled_old = fake_dump(directory, "app-20200201T000000Z-pre-migration.dump", 8)
    recent = fake_dump(directory, "app-20991231T000000Z.dump", 6)  # six days old: within seven
    other_database = fake_dump(directory, "app-old-20200101T000000Z.dump", 30)
    foreign = fake_dump(directory, "notes.dump", 30)
    stale_partial = directory / ".app-20200101T000000Z.dump.partial.4242"
    stale_partial.write_bytes(b"half")
    os.utime(stale_partial, (time.time() - 2 * 86400,) * 2)

    proc = pg_backup(postgres, "backup", BACKUP_DIR=str(directory), RETENTION_DAYS="7")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path in [*old, labelled_old]:
        assert not path.exists() and not Path(f"{path}.sha256").exists(), path
        assert f"prune: removed {path.name} (older than RETENTION_DAYS=7)" in proc.stdout
    assert not stale_partial.exists()
    for path in (recent, other_database, foreign):
        assert path.exists() and Path(f"{path}.sha256").exists(), path
    new = [p for p in dumps(directory) if p not in (recent, other_database, foreign)]
    assert len(new) == 1 and DUMP_NAME.match(new[0].name)
    assert "2 dumps of app kept" in proc.stdout


def test_pruning_never_removes_the_new_dump(postgres: Postgres, app_database: str) -> None:
    """Even when every file looks old (a clock gone wrong): a find(1) that reports every file it is asked about."""
    directory = backup_dir(postgres, "newest-")
    shims = directory.parent / "shims"
    shims.mkdir()
    (shims / "find").write_text('#!/bin/sh\nprintf "%s\\n" "$1"\n')
    (shims / "find").chmod(0o755)
    old = fake_dump(directory, "app-20200101T000000Z.dump", 0)
    env = postgres.env()
    proc = pg_backup(postgres, "backup", BACKUP_DIR=str(directory), RETENTION_DAYS="1", PATH=f"{shims}:{env['PATH']}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not old.exists()
    (kept,) = dumps(directory)
    assert json.loads((directory / "latest.json").read_text())["file"] == kept.name
    assert "1 dumps of app kept" in proc.stdout


def test_verify_accepts_the_dump(postgres: Postgres, backup: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    dump, _ = backup
    proc = pg_backup(postgres, "verify", dump)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"verify: OK {dump}" in proc.stdout


def test_restore_check_restores_and_compares_exact_row_counts(
    postgres: Postgres, backup: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    dump, _ = backup
    proc = pg_backup(postgres, "restore-check", dump)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for table, rows in SEEDED_COUNTS.items():
        assert f"restore-check: {table} source={rows} restored={rows} ok" in proc.stdout
    assert f"restore-check: OK {dump} (5 tables, row counts equal)" in proc.stdout
    assert postgres.value("SELECT count(*) FROM pg_database WHERE datname = 'app_restore_check'") == "0"


def test_restore_check_fails_when_the_counts_differ(postgres: Postgres) -> None:
    assert postgres.psql("CREATE DATABASE drift").returncode == 0
    assert postgres.psql("CREATE TABLE t AS SELECT generate_series(1, 10) AS n", "drift").returncode == 0
    directory = backup_dir(postgres, "drift-")
    made = pg_backup(postgres, "backup", BACKUP_DIR=str(directory), PGDATABASE="drift")
    assert made.returncode == 0, made.stderr
    assert postgres.psql("INSERT INTO t VALUES (11)", "drift").returncode == 0
    (dump,) = dumps(directory)
    proc = pg_backup(postgres, "restore-check", dump, PGDATABASE="drift")
    assert proc.returncode == 1
    assert "public.t source=11 restored=10 MISMATCH" in proc.stderr
    assert "FAILED: 1 of 1 tables differ" in proc.stderr
    assert postgres.value("SELECT count(*) FROM pg_database WHERE datname = 'drift_restore_check'") == "0"


def corrupted_copy(dump: Path, directory: Path, damage: str) -> Path:
    copy = directory / dump.name
    data = bytearray(dump.read_bytes())
    if damage == "flipped":
        for offset in range(len(data) // 2, len(data) // 2 + 16):
            data[offset] ^= 0xFF
        copy.write_bytes(data)
        shutil.copy(f"{dump}.sha256", f"{copy}.sha256")  # the checksum of the intact dump
    else:
        # Truncated with a matching checksum: only reading the archive can tell.
        data = data[: 64 if damage == "truncated header" else len(data) // 2]
        copy.write_bytes(data)
        Path(f"{copy}.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {copy.name}\n")
    return copy


def test_verify_and_restore_check_fail_loudly_on_a_flipped_byte(
    postgres: Postgres, backup: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    tmp_path = scratch_dir(postgres, "corrupt-")
    copy = corrupted_copy(backup[0], tmp_path, "flipped")
    for mode in ("verify", "restore-check"):
        proc = pg_backup(postgres, mode, copy)
        assert proc.returncode == 1, mode
        assert f"verify: CHECKSUM MISMATCH for {copy}" in proc.stderr, mode


def test_verify_fails_on_a_truncated_archive_header(
    postgres: Postgres, backup: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    tmp_path = scratch_dir(postgres, "corrupt-")
    copy = corrupted_copy(backup[0], tmp_path, "truncated header")
    proc = pg_backup(postgres, "verify", copy)
    assert proc.returncode == 1
    assert "verify: pg_restore cannot read" in proc.stderr


def test_restore_check_fails_on_truncated_data(
    postgres: Postgres, backup: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    tmp_path = scratch_dir(postgres, "corrupt-")
    copy = corrupted_copy(backup[0], tmp_path, "truncated data")
    proc = pg_backup(postgres, "restore-check", copy)
    assert proc.returncode == 1
    assert "error:" in proc.stderr
    assert postgres.value("SELECT count(*) FROM pg_database WHERE datname = 'app_restore_check'") == "0"


def test_verify_fails_without_a_checksum_file(
    postgres: Postgres, backup: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    tmp_path = scratch_dir(postgres, "corrupt-")
    copy = tmp_path / backup[0].name
    shutil.copy(backup[0], copy)
    proc = pg_backup(postgres, "verify", copy)
    assert proc.returncode == 1
    assert ".sha256 does not exist" in proc.stderr


@pytest.mark.parametrize("args", [[], ["restore"], ["verify"], ["backup", "extra"], ["restore-check"]])
def test_usage_errors_exit_2(postgres: Postgres, args: list[str]) -> None:
    proc = pg_backup(postgres, *args)
    assert proc.returncode == 2
    assert "usage: pg-backup.sh backup | verify FILE | restore-check FILE" in proc.stderr


# --- Redis -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Redis:
    port: int
    password: str
    pid: int
    data: Path

    def cli(self, *args: str, password: str | None = None) -> str:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.data.parent)}
        if password is not None:
            env["REDISCLI_AUTH"] = password
        proc = run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args], env=env, timeout=10)
        return proc.stdout.strip() + proc.stderr.strip()


REDIS_MAXMEMORY = "48Mi"


@pytest.fixture(scope="module")
def redis(system_tools: None) -> Iterator[Redis]:
    """redis-server as SERVICE_UID on the rendered redis.conf, its password in an include beside it
    (the Secret), its dir an fsGroup volume."""
    base = short_tmpdir("rdt-")
    proc: subprocess.Popen[bytes] | None = None
    try:
        data = fsgroup_volume(base / "data")
        (base / "auth").mkdir()
        password = secrets.token_urlsafe(18)
        (base / "auth" / "auth.conf").write_text(redis_auth_conf(password))
        (base / "redis.conf").write_text(
            redis_conf(
                REDIS_MAXMEMORY, "allkeys-lru", auth_include=str(base / "auth" / "auth.conf"), data_dir=str(data)
            )
        )
        port = free_port()
        # Overrides for the test only, read after the file: loopback and a free port.
        args: list[str | Path] = ["redis-server", base / "redis.conf", "--bind", "127.0.0.1", "--port", str(port)]
        with (base / "server.log").open("wb") as log:
            proc = subprocess.Popen(as_service(args), stdout=log, stderr=subprocess.STDOUT, cwd=base)
        server = Redis(port, password, proc.pid, data)
        deadline = time.monotonic() + 20
        while server.cli("ping", password=password) != "PONG":
            assert proc.poll() is None, (base / "server.log").read_text()
            assert time.monotonic() < deadline, (base / "server.log").read_text()
            time.sleep(0.05)
        yield server
    finally:
        if proc is not None:
            stop(proc, signal.SIGTERM)
        shutil.rmtree(base, ignore_errors=True)


def test_redis_asks_for_the_password_from_the_include(redis: Redis) -> None:
    assert "NOAUTH Authentication required" in redis.cli("ping")
    assert "WRONGPASS" in redis.cli("ping", password="wrong")
    assert redis.cli("ping", password=redis.password) == "PONG"


@pytest.mark.parametrize("command", ["FLUSHALL", "FLUSHDB", "CONFIG GET maxmemory", "DEBUG SLEEP 0"])
def test_redis_dangerous_commands_are_gone(redis: Redis, command: str) -> None:
    reply = redis.cli(*command.split(), password=redis.password)
    assert f"ERR unknown command '{command.split(maxsplit=1)[0]}'" in reply


def test_redis_persists_with_aof_and_keeps_to_maxmemory(redis: Redis) -> None:
    assert redis.cli("SET", "greeting", "hello", password=redis.password) == "OK"
    persistence = redis.cli("INFO", "persistence", password=redis.password)
    assert "aof_enabled:1" in persistence.splitlines()
    memory = redis.cli("INFO", "memory", password=redis.password).splitlines()
    assert f"maxmemory:{quantity_bytes(REDIS_MAXMEMORY)}" in memory
    assert f"maxmemory:{48 * 1024 * 1024}" in memory
    assert "maxmemory_policy:allkeys-lru" in memory
    aof = redis.data / "appendonlydir"
    assert aof.is_dir() and any(aof.iterdir())
    if IS_ROOT:
        assert process_uid(redis.pid) == SERVICE_UID
        assert aof.stat().st_uid == SERVICE_UID


def test_redis_does_not_start_without_its_auth_include(system_tools: None, tmp_path: Path) -> None:
    """Fail closed: a missing Secret mount stops the server instead of serving without a password."""
    conf = tmp_path / "redis.conf"
    conf.write_text(
        redis_conf("16Mi", "noeviction", auth_include=str(tmp_path / "missing.conf"), data_dir=str(tmp_path))
    )
    proc = run(["redis-server", conf, "--bind", "127.0.0.1", "--port", str(free_port())], timeout=20)
    assert proc.returncode != 0
    assert "missing.conf" in proc.stdout + proc.stderr
