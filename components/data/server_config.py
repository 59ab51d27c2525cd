"""Config files of the data tier's servers, rendered as text: postgresql.conf, pg_hba.conf, redis.conf
and the Redis auth include. Pure functions; the components mount their output from ConfigMaps and
Secrets, and tests/test_data_tools.py loads it into the real servers."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from typing import Final, get_args

from components.config import PG_FIXED, RedisEvictionPolicy, quantity_bytes

PG_HBA_PATH: Final = "/etc/postgresql/pg_hba.conf"
PG_SOCKET_DIR: Final = "/var/run/postgresql"
POSTGRES_PORT: Final = 5432
REDIS_PORT: Final = 6379
REDIS_DATA_DIR: Final = "/data"
REDIS_AUTH_INCLUDE: Final = "/etc/redis/auth/auth.conf"
REDIS_RENAMED_COMMANDS: Final = ("FLUSHALL", "FLUSHDB", "CONFIG", "DEBUG")
REDIS_MAXMEMORY_POLICIES: Final = frozenset(get_args(RedisEvictionPolicy))
REDIS_APPENDFSYNC: Final = frozenset({"always", "everysec", "no"})

_PG_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")
# The first line of every rendered file. It names this module's former path: the files' digest rolls
# the store pods, so a rename of the module is not worth a restart of PostgreSQL and Redis.
RENDERED_BY: Final = "# Rendered by components/data/conf.py."
_REDIS_COMMAND = re.compile(r"^[A-Z][A-Z0-9_-]*$")
_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")


def _pg_value(name: str, value: str | int | float) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"postgresql.conf: {name} = {value!r} is not a finite number")
        return repr(value)
    if not isinstance(value, str):
        raise ValueError(f"postgresql.conf: {name} has a {type(value).__name__}, expected str, int or float")
    # The lexer of postgresql.conf ends a string at a newline and reads backslash escapes inside quotes.
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in value):
        raise ValueError(f"postgresql.conf: {name} = {value!r} contains a control character")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def postgresql_conf(parameters: Mapping[str, str | int | float], *, hba_file: str = PG_HBA_PATH) -> str:
    """The platform's fixed base, then `parameters` (tuning, or the overridable logging defaults).

    No data_directory: PGDATA (the image's environment, pointing into the volume) decides."""
    base: dict[str, str | int | float] = {
        "listen_addresses": "*",
        "port": POSTGRES_PORT,
        "unix_socket_directories": PG_SOCKET_DIR,
        "hba_file": hba_file,
        # password_encryption is left at its default, scram-sha-256 since PostgreSQL 14 (a test
        # asserts it on the real server); written out, the line reads as a secret to the policy pack.
        # Containers log to stderr; a collector would write files inside the volume nobody reads.
        "logging_collector": False,
        "log_destination": "stderr",
    }
    defaults: dict[str, str | int | float] = {
        "log_line_prefix": "%m [%p] %q%u@%d ",
        "log_min_duration_statement": 1000,
        "log_connections": False,
        "log_timezone": "UTC",
    }
    for name in parameters:
        if not _PG_NAME.match(name):
            raise ValueError(f"postgresql.conf: invalid parameter name {name!r} (expected {_PG_NAME.pattern})")
        if name in PG_FIXED:
            raise ValueError(f"postgresql.conf: {name} is fixed by the platform, not a tuning parameter")
    lines = [f"{RENDERED_BY} Platform base:"]
    lines += [f"{name} = {_pg_value(name, value)}" for name, value in base.items()]
    lines.append("# Logging defaults (overridable):")
    lines += [f"{name} = {_pg_value(name, parameters.get(name, value))}" for name, value in defaults.items()]
    tuning = {name: value for name, value in parameters.items() if name not in defaults}
    if tuning:
        lines.append("# Tuning:")
        lines += [f"{name} = {_pg_value(name, value)}" for name, value in tuning.items()]
    return "\n".join(lines) + "\n"


def pg_hba_conf(client_cidrs: Sequence[str] = ("0.0.0.0/0", "::/0")) -> str:
    """Password (SCRAM) authentication for every TCP connection; the pod-private socket trusts."""
    if isinstance(client_cidrs, str):
        raise ValueError("pg_hba.conf: client_cidrs is a sequence of CIDRs, not one string")
    if not client_cidrs:
        raise ValueError("pg_hba.conf: at least one client CIDR is needed")
    networks: list[str] = []
    for cidr in client_cidrs:
        try:
            network = str(ipaddress.ip_network(cidr, strict=True))
        except ValueError as error:
            raise ValueError(f"pg_hba.conf: {cidr!r} is not a network in CIDR form: {error}") from None
        if network not in networks:
            networks.append(network)
    lines = [
        RENDERED_BY,
        "# The socket trusts: only the postgres container mounts its directory (an emptyDir), and a process",
        "# there runs as the UID that owns the data files anyway. It is how the password is set again after a",
        "# rotation (the postStart hook) without knowing the old one.",
        "# Everything over TCP needs the password (SCRAM): the app, the exporter, backups, the readiness probe.",
        "# `host`, not `hostssl`: the server has no certificate; NetworkPolicy limits who reaches the port.",
        "# No replication line: `all` does not match replication connections, so they are refused.",
        "# TYPE  DATABASE  USER  ADDRESS  METHOD",
        "local all all trust",
    ]
    lines += [f"host all all {network} scram-sha-256" for network in networks]
    return "\n".join(lines) + "\n"


def redis_conf(
    maxmemory: str,
    maxmemory_policy: str,
    appendfsync: str = "everysec",
    renamed_commands: Sequence[str] = REDIS_RENAMED_COMMANDS,
    auth_include: str = REDIS_AUTH_INCLUDE,
    *,
    data_dir: str = REDIS_DATA_DIR,
) -> str:
    """redis.conf without the password: `requirepass` arrives through `include` of a file from a Secret."""
    maxmemory_bytes = quantity_bytes(maxmemory)
    if maxmemory_policy not in REDIS_MAXMEMORY_POLICIES:
        raise ValueError(
            f"redis.conf: maxmemory-policy {maxmemory_policy!r} is not one of {sorted(REDIS_MAXMEMORY_POLICIES)}"
        )
    if appendfsync not in REDIS_APPENDFSYNC:
        raise ValueError(f"redis.conf: appendfsync {appendfsync!r} is not one of {sorted(REDIS_APPENDFSYNC)}")
    if isinstance(renamed_commands, str):
        raise ValueError("redis.conf: renamed_commands is a sequence of command names, not one string")
    commands = [command.upper() for command in renamed_commands]
    for command in commands:
        if not _REDIS_COMMAND.match(command):
            raise ValueError(f"redis.conf: {command!r} is not a command name")
    for path in (auth_include, data_dir):
        if not _PATH.match(path):
            raise ValueError(f"redis.conf: path {path!r} must be absolute, without spaces or quotes")
    lines = [
        RENDERED_BY,
        "bind 0.0.0.0",
        # Only bites when no password is set: a missing auth include fails the start instead.
        "protected-mode yes",
        f"port {REDIS_PORT}",
        "daemonize no",
        'logfile ""',
        f"dir {data_dir}",
        "appendonly yes",
        'appendfilename "appendonly.aof"',
        f"appendfsync {appendfsync}",
        "aof-use-rdb-preamble yes",
        f"# maxmemory {maxmemory}",
        f"maxmemory {maxmemory_bytes}",
        f"maxmemory-policy {maxmemory_policy}",
    ]
    # Renamed to "": the commands disappear; a client that finds the password still cannot wipe or reconfigure.
    lines += [f'rename-command {command} ""' for command in dict.fromkeys(commands)]
    # Last, so that no directive above can override what the Secret sets.
    lines.append(f"include {auth_include}")
    return "\n".join(lines) + "\n"


def redis_auth_conf(password: str) -> str:
    """The auth include's content; the caller renders it inside a secret Output."""
    if not password:
        raise ValueError("redis auth: the password is empty")
    # Redis splits config lines at whitespace and reads quotes as quoting: such a password would change meaning.
    if any(ch.isspace() or ch in "\"'" or not ch.isprintable() for ch in password):
        raise ValueError("redis auth: the password must not contain whitespace, quotes or control characters")
    return f"requirepass {password}\n"


PGBOUNCER_PORT: Final = 6432
_PGBOUNCER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def pgbouncer_ini(
    database: str,
    server_host: str,
    *,
    auth_file: str,
    pool_mode: str = "transaction",
    default_pool_size: int = 20,
    reserve_pool_size: int = 5,
    max_client_conn: int = 1000,
    listen_addr: str = "0.0.0.0",  # noqa: S104 (the pod's address; its NetworkPolicy decides who connects)
    listen_port: int = PGBOUNCER_PORT,
    server_port: int = POSTGRES_PORT,
) -> str:
    """pgbouncer.ini: one database, SCRAM for clients with the passwords of `auth_file` (a Secret), and
    at most default + reserve pool connections to PostgreSQL. Nothing is written to the filesystem: no
    Unix socket, no log or pid file (the root filesystem is read-only), logs on stderr."""
    for what, value in (("database", database), ("server host", server_host), ("listen address", listen_addr)):
        if not _PGBOUNCER_NAME.match(value):
            raise ValueError(f"pgbouncer.ini: {what} {value!r} must be a plain name or address")
    if pool_mode not in ("transaction", "session"):
        raise ValueError(f"pgbouncer.ini: pool_mode {pool_mode!r} is not transaction or session")
    if not _PATH.match(auth_file):
        raise ValueError(f"pgbouncer.ini: auth_file {auth_file!r} must be absolute, without spaces or quotes")
    server = default_pool_size + reserve_pool_size
    lines = [
        "; Rendered by components/data/server_config.py.",
        "[databases]",
        f"{database} = host={server_host} port={server_port} dbname={database}",
        "",
        "[pgbouncer]",
        f"listen_addr = {listen_addr}",
        f"listen_port = {listen_port}",
        "unix_socket_dir =",
        "auth_type = scram-sha-256",
        f"auth_file = {auth_file}",
        f"pool_mode = {pool_mode}",
        f"max_client_conn = {max_client_conn}",
        f"default_pool_size = {default_pool_size}",
        f"reserve_pool_size = {reserve_pool_size}",
        "reserve_pool_timeout = 5",
        # The hard cap the connection budget counts on, whatever users or databases appear.
        f"max_db_connections = {server}",
        # PostgreSQL has no certificate; the NetworkPolicy limits who reaches either port.
        "server_tls_sslmode = disable",
        # Drivers send these at startup; PgBouncer would otherwise refuse the connection.
        "ignore_startup_parameters = extra_float_digits,options",
        "server_reset_query = DISCARD ALL",
        "server_check_query = select 1",
        "log_connections = 0",
        "log_disconnections = 0",
        "admin_users =",
    ]
    return "\n".join(lines) + "\n"


def pgbouncer_userlist(user: str, password: str) -> str:
    """The auth_file: the user and its password, which PgBouncer also uses to log in to PostgreSQL; the
    caller renders it inside a secret Output."""
    if not _PGBOUNCER_NAME.match(user):
        raise ValueError(f"pgbouncer userlist: user {user!r} must be a plain name")
    if not password or '"' in password or any(not ch.isprintable() for ch in password):
        raise ValueError("pgbouncer userlist: the password must be non-empty, printable and without quotes")
    return f'"{user}" "{password}"\n'
