"""PostgreSQL: the official image as a hardened StatefulSet, its exporter, and nightly backups.

The image runs as an arbitrary UID: PGDATA is a subdirectory of the claim (the claim's root belongs
to root with group fsGroup, and PostgreSQL insists on owning its data directory), and the image's
entrypoint supplies a passwd entry through nss_wrapper. tests/test_data_tools.py shows initdb and
the server working that way with Debian's PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.config import PostgresSettings
from components.contracts import BackupRequest, BackupTaken, Client, DataEndpoint, SecretKeyRef
from components.data.backups import (
    BACKUP_NAME,
    PASSWORD_KEY,
    PORT,
    SECRET,
    nightly_backup_manifests,
    pre_migration_backup_manifest,
)
from components.data.server_config import pg_hba_conf, postgresql_conf
from components.data.store_workload import (
    StoreContext,
    sidecar,
    store_kit,
    store_statefulset_spec,
    store_workload,
)
from components.kit import workload
from components.kit.objects import Manifest, config_map, digest, register, secret
from components.kit.workload import METRICS_PORT_NAME, exec_probe, mount
from components.labels import selector_labels

EXPORTER_PORT = 9187
DATA_PATH = "/var/lib/postgresql/data"
# A subdirectory: the claim's root is not ours to own (see the module docstring).
PGDATA = f"{DATA_PATH}/pgdata"
CONFIG_PATH = "/etc/postgresql"
# The Secret mounted as files: the image, the exporter and the hooks read the password from a file
# (POSTGRES_PASSWORD_FILE, DATA_SOURCE_PASS_FILE), so it is in no container's environment.
CREDENTIALS_PATH = "/etc/postgresql-credentials"
PASSWORD_FILE = f"{CREDENTIALS_PATH}/{PASSWORD_KEY}"


@dataclass(frozen=True)
class PostgresArgs:
    settings: PostgresSettings
    context: StoreContext
    password: pulumi.Output[str]


# postStart: the image sets the password only at initdb. After a rotation the Secret (and
# DATABASE_URL) carry the new password while the role keeps the old one, so every start sets it again
# over the pod-private socket. \getenv keeps the password out of the process arguments; an empty or
# missing file fails the hook rather than set an empty password.
ROLE_SYNC_HOOK = r"""
password=$(cat "$POSTGRES_PASSWORD_FILE") && [ -n "$password" ] || {
  echo "no password in POSTGRES_PASSWORD_FILE ($POSTGRES_PASSWORD_FILE)" >&2; exit 1
}
i=0
until pg_isready --host="${PGHOST:-/var/run/postgresql}" --username="$POSTGRES_USER" --quiet; do
  i=$((i + 1))
  if [ "$i" -ge 300 ]; then echo "postgres did not accept connections within 300s" >&2; exit 1; fi
  sleep 1
done
printf '%s\n' '\getenv pw POSTGRES_PASSWORD' 'ALTER ROLE :"user" PASSWORD :'"'"'pw'"'"';' |
  POSTGRES_PASSWORD="$password" psql --no-psqlrc --quiet --host="${PGHOST:-/var/run/postgresql}" \
    --username="$POSTGRES_USER" --dbname=postgres --set=ON_ERROR_STOP=1 --set=user="$POSTGRES_USER" >/dev/null
"""


def is_ready_command(settings: PostgresSettings) -> list[str]:
    # pg_isready asks the server whether it accepts connections; it needs no password.
    return ["pg_isready", "--host=127.0.0.1", f"--port={PORT}", f"--username={settings.user}", "--quiet"]


def query_command(settings: PostgresSettings) -> list[str]:
    return [
        "/bin/sh",
        "-c",
        'PGPASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")" psql --no-psqlrc --host=127.0.0.1 '
        f"--port={PORT} --username={settings.user} --dbname={settings.database} --tuples-only "
        "--command='SELECT 1' >/dev/null",
    ]


class Postgres(pulumi.ComponentResource):
    """PostgreSQL in the data namespace, with its exporter and backups (nightly, and before a migration)."""

    endpoint: DataEndpoint
    backup_selector: dict[str, str]

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:data:Postgres", name, None, opts)
        s, ctx = args.settings, args.context
        ns = ctx.namespace
        self._name, self._settings, self._context = name, s, ctx
        self._host = host = f"postgres.{ns}.svc.cluster.local"
        self.backup_selector = selector_labels(BACKUP_NAME, ctx.tier.instance)
        clients = [*ctx.clients]
        if s.backup.enabled:
            clients.append(Client(BACKUP_NAME, ns, self.backup_selector))

        alive = is_ready_command(s)
        sidecars = []
        if s.exporter.enabled:
            exporter_env = [
                {"name": "DATA_SOURCE_URI", "value": f"127.0.0.1:{PORT}/{s.database}?sslmode=disable"},
                {"name": "DATA_SOURCE_USER", "value": s.user},
                {"name": "DATA_SOURCE_PASS_FILE", "value": PASSWORD_FILE},
            ]
            exporter = sidecar("exporter", s.exporter.image, EXPORTER_PORT, exporter_env, "/metrics", "/")
            exporter["volume_mounts"] = [{"name": "credentials", "mount_path": CREDENTIALS_PATH, "read_only": True}]
            sidecars.append(exporter)
        spec = store_workload(
            "postgres",
            ctx,
            "database",
            s.image,
            {"postgres": PORT, **({METRICS_PORT_NAME: EXPORTER_PORT} if s.exporter.enabled else {})},
            s.resources,
            {
                # First start runs initdb and a crash recovery may replay WAL for a while: ten minutes.
                "startup": exec_probe(alive, period=10, failures=60),
                # Ready: the app's user logs in to the app's database and runs a query, which is what
                # the app needs. Alive: the server answers at all (a refused login must not restart it).
                "readiness": exec_probe(query_command(s), period=10, failures=3),
                "liveness": exec_probe(alive, period=20, failures=6, timeout=10),
            },
            writable_paths=["/tmp", "/var/run/postgresql"],
            # Fast shutdown (preStop) finishes in seconds; the rest is for a checkpoint of a busy server.
            grace_seconds=120,
            args=["postgres", "-c", f"config_file={CONFIG_PATH}/postgresql.conf"],
            env=[
                {"name": "POSTGRES_USER", "value": s.user},
                {"name": "POSTGRES_DB", "value": s.database},
                {"name": "PGDATA", "value": PGDATA},
                {"name": "POSTGRES_INITDB_ARGS", "value": "--auth-host=scram-sha-256 --auth-local=scram-sha-256"},
                {"name": "POSTGRES_PASSWORD_FILE", "value": PASSWORD_FILE},
            ],
            # SIGTERM is a "smart" shutdown that waits for every client to leave, which pooled
            # connections never do: stop fast (clean, no recovery on start) before the kubelet's signal.
            lifecycle={
                "post_start": {"exec_": {"command": ["/bin/sh", "-c", ROLE_SYNC_HOOK]}},
                "pre_stop": {
                    "exec_": {"command": ["/bin/sh", "-c", 'pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop']}
                },
            },
            sidecars=sidecars,
        )
        labels = spec.identity.labels
        config = {"postgresql.conf": postgresql_conf(dict(s.parameters)), "pg_hba.conf": pg_hba_conf()}
        statefulset = store_statefulset_spec(
            spec,
            # A new configuration or password rolls the pod; the password only as a digest.
            pulumi.Output.unsecret(args.password.apply(lambda p: digest({"config": config, "password": p}))),
            s.storage,
            ctx,
        )
        pod = statefulset["template"]["spec"]
        mount(pod, "data", DATA_PATH, None)
        mount(pod, "config", CONFIG_PATH, {"config_map": {"name": "postgres-config"}})
        # Parallel queries share memory through /dev/shm, which a container gets only 64 MiB of.
        mount(pod, "shm", "/dev/shm", {"empty_dir": {"medium": "Memory", "size_limit": "256Mi"}})
        pod["containers"][0]["volume_mounts"][-1].pop("read_only")
        mount(pod, "credentials", CREDENTIALS_PATH, {"secret": {"secret_name": SECRET, "default_mode": 0o440}})
        manifests = [
            secret(f"{name}-credentials", SECRET, ns, labels, {PASSWORD_KEY: args.password}),
            config_map(f"{name}-config", "postgres-config", ns, labels, config),
            *store_kit(name, spec, clients, ctx),
            Manifest(
                f"{name}-statefulset",
                "StatefulSet",
                {"metadata": workload.metadata("postgres", ns, labels), "spec": statefulset},
                stateful=True,
                after=(f"{name}-credentials", f"{name}-config"),
            ),
        ]
        if s.backup.enabled:
            backup_labels = {**labels, **self.backup_selector, "app.kubernetes.io/component": "backup"}
            manifests += nightly_backup_manifests(
                name, s, ns, host, backup_labels, self.backup_selector, spec.identity.selector, ctx.priority_class
            )
        self._objects = register(manifests, self, ctx.tier)

        self.endpoint = DataEndpoint(
            name="postgres",
            host=host,
            port=PORT,
            namespace=ns,
            cidr=None,
            pod_selector=spec.identity.selector,
            credential=pulumi.Output.secret(args.password),
            secret=SecretKeyRef(ns, SECRET, PASSWORD_KEY),
            database=s.database,
            user=s.user,
        )
        self.register_outputs({"host": host, "port": PORT})

    def backup_before(self, request: BackupRequest) -> BackupTaken:
        """A dump of the database before `request`'s migration runs, into the backup claim."""
        ctx = self._context
        job, label = pre_migration_backup_manifest(
            request,
            self._settings,
            ctx.namespace,
            ctx.tier.instance,
            self._host,
            self.backup_selector,
            ctx.priority_class,
        )
        # After the requester's objects (and, as every object of the tier, the namespace); the backup
        # objects and PostgreSQL itself are in place before a dump can run.
        name = self._name
        ready = [self._objects[f"{name}-{role}"] for role in ("statefulset", "backups", "backup-script")]
        registered = register([job], self, ctx.tier, *request.after, *ready)
        return BackupTaken(job=registered[job.logical], label=label)
