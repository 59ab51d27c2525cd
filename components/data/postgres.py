"""PostgreSQL: the official image as a hardened StatefulSet, its exporter, and nightly backups.

The image runs as an arbitrary UID: PGDATA is a subdirectory of the claim (the claim's root belongs
to root with group fsGroup, and PostgreSQL insists on owning its data directory), and the image's
entrypoint supplies a passwd entry through nss_wrapper. tests/test_data_tools.py shows initdb and
the server working that way with Debian's PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import workload
from components.config import PostgresSettings
from components.data import conf, store
from components.data.store import Client, StoreContext
from components.labels import selector_labels
from components.network import DataEndpoint, SecretKeyRef

PORT = 5432
EXPORTER_PORT = 9187
DATA_PATH = "/var/lib/postgresql/data"
# A subdirectory: the claim's root is not ours to own (see the module docstring).
PGDATA = f"{DATA_PATH}/pgdata"
CONFIG_PATH = "/etc/postgresql"
BACKUP_PATH = "/backups"
SCRIPTS_PATH = "/opt/support-platform"
BACKUP_SCRIPT = (Path(__file__).parent / "files" / "pg-backup.sh").read_text()
SECRET = "postgres-credentials"  # noqa: S105 (a Secret's name)
PASSWORD_KEY = "password"  # noqa: S105 (a key name)
# The Secret mounted as files: the image, the exporter and the hooks read the password from a file
# (POSTGRES_PASSWORD_FILE, DATA_SOURCE_PASS_FILE), so it is in no container's environment.
CREDENTIALS_PATH = "/etc/postgresql-credentials"
PASSWORD_FILE = f"{CREDENTIALS_PATH}/{PASSWORD_KEY}"
BACKUP_CLAIM = "postgres-backups"
BACKUP_NAME = "postgres-backup"


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


def backup_env(settings: PostgresSettings, host: str, retention_days: int) -> list[dict[str, Any]]:
    """What pg-backup.sh reads (see its header): where the server is and how long dumps are kept."""
    return [
        {"name": "PGHOST", "value": host},
        {"name": "PGPORT", "value": str(PORT)},
        {"name": "PGUSER", "value": settings.user},
        {"name": "PGDATABASE", "value": settings.database},
        store.secret_env("PGPASSWORD", SECRET, PASSWORD_KEY),
        {"name": "BACKUP_DIR", "value": BACKUP_PATH},
        {"name": "RETENTION_DAYS", "value": str(retention_days)},
    ]


def backup_pod_spec(
    settings: PostgresSettings,
    ident: workload.WorkloadIdentity,
    host: str,
    priority_class: str,
    extra_env: list[dict[str, Any]] | None = None,
    mode: str = "backup",
) -> dict[str, Any]:
    """The pod of a backup run: the PostgreSQL image (its pg_dump matches the server), the script
    from a ConfigMap, the backup claim; restricted like every pod."""
    return {
        "service_account_name": ident.service_account_name,
        "automount_service_account_token": False,
        "enable_service_links": False,
        "restart_policy": "Never",
        "priority_class_name": priority_class,
        "security_context": workload.pod_security_context(store.RUN_AS_USER),
        "containers": [
            {
                "name": "backup",
                "image": settings.image,
                "image_pull_policy": "IfNotPresent",
                "command": ["/bin/sh", f"{SCRIPTS_PATH}/pg-backup.sh", mode],
                "env": [*backup_env(settings, host, settings.backup.retention_days), *(extra_env or [])],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"},
                },
                "security_context": workload.container_security_context(store.RUN_AS_USER),
                "volume_mounts": [
                    {"name": "backups", "mount_path": BACKUP_PATH},
                    {"name": "scripts", "mount_path": SCRIPTS_PATH, "read_only": True},
                    {"name": "tmp", "mount_path": "/tmp"},
                ],
                "termination_message_policy": "FallbackToLogsOnError",
            }
        ],
        "volumes": [
            {"name": "backups", "persistent_volume_claim": {"claim_name": BACKUP_CLAIM}},
            {"name": "scripts", "config_map": {"name": f"{BACKUP_NAME}-script", "default_mode": 0o555}},
            {"name": "tmp", "empty_dir": {}},
        ],
    }


def backup_policy_spec(backup_selector: dict[str, str], postgres_selector: dict[str, str]) -> dict[str, Any]:
    """Backup pods take no traffic and reach PostgreSQL only."""
    return {
        "pod_selector": {"match_labels": dict(backup_selector)},
        "policy_types": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [
            {
                "to": [{"pod_selector": {"match_labels": dict(postgres_selector)}}],
                "ports": [{"protocol": "TCP", "port": PORT}],
            }
        ],
    }


class Postgres(pulumi.ComponentResource):
    """PostgreSQL in the data namespace, with its exporter, backup volume and backup CronJob."""

    endpoint: DataEndpoint
    backup_selector: dict[str, str]

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:data:Postgres", name, None, opts)
        s, ctx = args.settings, args.context
        ns = ctx.namespace
        child = ctx.options(self)
        svc = store.store_service(
            "database",
            s.image,
            {"postgres": PORT, **({store.METRICS_PORT_NAME: EXPORTER_PORT} if s.exporter.enabled else {})},
            s.resources,
            ["/tmp", "/var/run/postgresql"],
            # Fast shutdown (preStop) finishes in seconds; the rest is for a checkpoint of a busy server.
            120,
            env={},
        )
        ident = store.identity("postgres", ctx, svc)
        host = f"postgres.{ns}.svc.cluster.local"
        self.backup_selector = selector_labels(BACKUP_NAME, ctx.instance)
        clients = [*ctx.clients]
        if s.backup.enabled:
            clients.append(Client(BACKUP_NAME, ns, self.backup_selector))

        secret = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=workload.metadata(SECRET, ns, ident.labels),
            type="Opaque",
            string_data=store.secret_data({PASSWORD_KEY: args.password}),
            opts=child,
        )
        config = {"postgresql.conf": conf.postgresql_conf(dict(s.parameters)), "pg_hba.conf": conf.pg_hba_conf()}
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=workload.metadata("postgres-config", ns, ident.labels),
            data=config,
            opts=child,
        )
        store.register_kit(name, ident, dict(svc.ports), clients, ctx, s.exporter.enabled, child)

        spec = store.statefulset_spec(
            ident,
            svc,
            # A new configuration or password rolls the pod; the password only as a digest.
            pulumi.Output.unsecret(args.password.apply(lambda p: store.digest({"config": config, "password": p}))),
            [store.claim_template("data", s.storage)],
            ctx,
        )
        pod = spec["template"]["spec"]
        main = pod["containers"][0]
        main["args"] = ["postgres", "-c", f"config_file={CONFIG_PATH}/postgresql.conf"]
        main["env"] = [
            {"name": "POSTGRES_USER", "value": s.user},
            {"name": "POSTGRES_DB", "value": s.database},
            {"name": "PGDATA", "value": PGDATA},
            {"name": "POSTGRES_INITDB_ARGS", "value": "--auth-host=scram-sha-256 --auth-local=scram-sha-256"},
            {"name": "POSTGRES_PASSWORD_FILE", "value": PASSWORD_FILE},
        ]
        alive = is_ready_command(s)
        # First start runs initdb and a crash recovery may replay WAL for a while: ten minutes.
        main["startup_probe"] = store.exec_probe(alive, period=10, failures=60)
        # Ready: the app's user logs in to the app's database and runs a query, which is what the
        # app needs. Alive: the server answers at all (a refused login must not restart it).
        main["readiness_probe"] = store.exec_probe(query_command(s), period=10, failures=3)
        main["liveness_probe"] = store.exec_probe(alive, period=20, failures=6, timeout=10)
        # SIGTERM is a "smart" shutdown that waits for every client to leave, which pooled
        # connections never do: stop fast (clean, no recovery on start) before the kubelet's signal.
        main["lifecycle"] = {
            "post_start": {"exec_": {"command": ["/bin/sh", "-c", ROLE_SYNC_HOOK]}},
            "pre_stop": {"exec_": {"command": ["/bin/sh", "-c", 'pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop']}},
        }
        store.mount(pod, "data", DATA_PATH, None)
        store.mount(pod, "config", CONFIG_PATH, {"config_map": {"name": "postgres-config"}})
        # Parallel queries share memory through /dev/shm, which a container gets only 64 MiB of.
        store.mount(pod, "shm", "/dev/shm", {"empty_dir": {"medium": "Memory", "size_limit": "256Mi"}})
        main["volume_mounts"][-1].pop("read_only")
        credentials = {"name": "credentials", "mount_path": CREDENTIALS_PATH, "read_only": True}
        store.mount(pod, "credentials", CREDENTIALS_PATH, {"secret": {"secret_name": SECRET, "default_mode": 0o440}})
        if s.exporter.enabled:
            pod["containers"].append(
                store.sidecar(
                    "exporter",
                    s.exporter.image,
                    EXPORTER_PORT,
                    [
                        {"name": "DATA_SOURCE_URI", "value": f"127.0.0.1:{PORT}/{s.database}?sslmode=disable"},
                        {"name": "DATA_SOURCE_USER", "value": s.user},
                        {"name": "DATA_SOURCE_PASS_FILE", "value": PASSWORD_FILE},
                    ],
                    "/metrics",
                    "/",
                )
            )
            pod["containers"][-1]["volume_mounts"] = [credentials]
        k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=workload.metadata("postgres", ns, ident.labels),
            spec=spec,
            opts=ctx.stateful_options(self, secret, config_map),
        )

        if s.backup.enabled:
            self._backups(name, s, ctx, host, ident)

        self.endpoint = DataEndpoint(
            name="postgres",
            host=host,
            port=PORT,
            namespace=ns,
            cidr=None,
            pod_selector=ident.selector,
            credential=pulumi.Output.secret(args.password),
            secret=SecretKeyRef(ns, SECRET, PASSWORD_KEY),
            database=s.database,
            user=s.user,
        )
        self.register_outputs({"host": host, "port": PORT})

    def _backups(
        self,
        name: str,
        s: PostgresSettings,
        ctx: StoreContext,
        host: str,
        ident: workload.WorkloadIdentity,
    ) -> None:
        ns = ctx.namespace
        child = ctx.options(self)
        labels = {**ident.labels, **self.backup_selector, "app.kubernetes.io/component": "backup"}
        k8s.core.v1.PersistentVolumeClaim(
            f"{name}-backups",
            metadata=workload.metadata(BACKUP_CLAIM, ns, labels),
            spec=store.claim_template(BACKUP_CLAIM, s.backup.storage)["spec"],
            opts=ctx.stateful_options(self),
        )
        k8s.core.v1.ConfigMap(
            f"{name}-backup-script",
            metadata=workload.metadata(f"{BACKUP_NAME}-script", ns, labels),
            data={"pg-backup.sh": BACKUP_SCRIPT},
            opts=child,
        )
        k8s.core.v1.ServiceAccount(
            f"{name}-backup-serviceaccount",
            metadata=workload.metadata(BACKUP_NAME, ns, labels),
            automount_service_account_token=False,
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-backup-networkpolicy",
            metadata=workload.metadata(BACKUP_NAME, ns, labels),
            spec=backup_policy_spec(self.backup_selector, ident.selector),
            opts=child,
        )
        backup_ident = workload.WorkloadIdentity(
            name=BACKUP_NAME,
            namespace=ns,
            labels=labels,
            selector=self.backup_selector,
            config_map_name=f"{BACKUP_NAME}-script",
            secret_name=SECRET,
            service_account_name=BACKUP_NAME,
        )
        k8s.batch.v1.CronJob(
            f"{name}-backup-cronjob",
            metadata=workload.metadata(BACKUP_NAME, ns, labels),
            spec=store.cronjob_spec(
                s.backup.schedule,
                s.backup.time_zone,
                labels,
                backup_pod_spec(s, backup_ident, host, ctx.priority_class),
                backoff_limit=2,
                deadline_seconds=s.migrations.timeout_seconds,
            ),
            opts=child,
        )
