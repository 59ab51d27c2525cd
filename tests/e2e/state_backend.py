"""A shared state backend for the engine suite: the CLI's DIY `postgres://` backend on Debian's PostgreSQL.

The server runs the way tests/test_data_tools.py runs it (its helpers: initdb and the server as an
unprivileged UID, a free port on 127.0.0.1, SCRAM passwords), with one role and database for Pulumi
state. Each test gets a table of its own (the backend's `?table=` parameter), so tests share the
server and nothing else. The password reaches the CLI as PGPASSWORD (lib/pq reads it), never in the URL.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.test_data_tools import (
    ROOT,
    as_service,
    free_port,
    fsgroup_volume,
    initdb,
    postgres_bindir,
    run,
    short_tmpdir,
    stop,
)

ROLE = "pulumi"
DATABASE = "pulumi_state"


@dataclass(frozen=True)
class StateServer:
    port: int
    password: str
    bindir: Path

    def url(self, key: str) -> str:
        """The backend URL of one test's table: the role and database, no password."""
        table = "state_" + hashlib.sha256(key.encode()).hexdigest()[:16]
        return f"postgres://{ROLE}@127.0.0.1:{self.port}/{DATABASE}?sslmode=disable&table={table}"

    def env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "10"}

    def psql(self, sql: str) -> str:
        flags = ["-X", "-q", "-w", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port)]
        proc = run(
            [self.bindir / "psql", *flags, "-U", ROLE, "-d", DATABASE, "-c", sql],
            env={"PATH": "/usr/bin:/bin", "PGPASSWORD": self.password},
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()


def start_state_server() -> Iterator[StateServer]:
    deps = run([ROOT / "scripts" / "system-deps.sh", "setpriv=util-linux"], timeout=600)
    assert deps.returncode == 0, deps.stderr
    bindir = postgres_bindir()
    if bindir is None:
        installed = run([ROOT / "scripts" / "system-deps.sh", "postgres=postgresql"], timeout=900)
        assert installed.returncode == 0, installed.stderr
        bindir = postgres_bindir()
    assert bindir is not None, "no PostgreSQL server binaries after installing postgresql"
    base = short_tmpdir("pgstate-")
    proc: subprocess.Popen[bytes] | None = None
    try:
        pgdata = fsgroup_volume(base / "vol") / "pgdata"
        socket_dir = fsgroup_volume(base / "run")
        superuser = secrets.token_urlsafe(18)
        init = initdb(bindir, base, pgdata, superuser)
        assert init.returncode == 0, init.stdout + init.stderr
        port = free_port()
        args: list[str | Path] = [
            bindir / "postgres", "-D", pgdata, "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}",
            "-c", f"unix_socket_directories={socket_dir}", "-c", "fsync=off",
        ]  # fmt: skip
        with (base / "server.log").open("wb") as log:
            proc = subprocess.Popen(as_service(args), stdout=log, stderr=subprocess.STDOUT, env={"LANG": "C.UTF-8"})
        ready = [bindir / "pg_isready", "-q", "-U", "postgres", "-h", "127.0.0.1", "-p", str(port)]
        deadline = time.monotonic() + 30
        while run(ready).returncode != 0:
            assert proc.poll() is None, (base / "server.log").read_text()
            assert time.monotonic() < deadline, (base / "server.log").read_text()
            time.sleep(0.1)
        password = secrets.token_urlsafe(18)
        admin = {"PATH": "/usr/bin:/bin", "PGPASSWORD": superuser}
        where = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        for sql in (f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'", f"CREATE DATABASE {DATABASE} OWNER {ROLE}"):
            made = run([bindir / "psql", *where, "-d", "postgres", "-c", sql], env=admin)
            assert made.returncode == 0, made.stderr
        yield StateServer(port, password, bindir)
    finally:
        if proc is not None:
            stop(proc, signal.SIGINT)  # fast shutdown
        shutil.rmtree(base, ignore_errors=True)
