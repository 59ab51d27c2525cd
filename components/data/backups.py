"""PostgreSQL's backups, all owned by the data tier: the nightly CronJob and the Job a migration
asks for before it runs (through components/contracts.py). Both run files/pg-backup.sh with the
PostgreSQL image (its pg_dump matches the server) and write to the backup claim."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi

from components.config import PostgresSettings
from components.contracts import BackupRequest
from components.data.store_workload import RUN_AS_USER, cronjob_spec
from components.kit import workload
from components.kit.network import job_to_pods_policy_spec
from components.kit.objects import Manifest, config_map, network_policy, service_account
from components.labels import ANNOTATION_PREFIX, standard_labels

PORT = 5432
SECRET = "postgres-credentials"  # noqa: S105 (a Secret's name)
PASSWORD_KEY = "password"  # noqa: S105 (a key name)
BACKUP_PATH = "/backups"
SCRIPTS_PATH = "/opt/support-platform"
BACKUP_SCRIPT = (Path(__file__).parent / "files" / "pg-backup.sh").read_text()
BACKUP_CLAIM = "postgres-backups"
BACKUP_NAME = "postgres-backup"
# Annotations that let people (and scripts/rollback.py) find the backup taken before a migration.
BACKUP_LABEL_ANNOTATION = f"{ANNOTATION_PREFIX}/backup-label"
BACKUP_CLAIM_ANNOTATION = f"{ANNOTATION_PREFIX}/backup-claim"


def backup_label(image: str) -> str:
    """A label a dump file carries, derived from the image being rolled out: the same release
    always names the same backup, and the name fits a file name."""
    return "pre-migration-" + hashlib.sha256(image.encode()).hexdigest()[:12]


def backup_env(settings: PostgresSettings, host: str, retention_days: int) -> list[dict[str, Any]]:
    """What pg-backup.sh reads (see its header): where the server is and how long dumps are kept."""
    return [
        {"name": "PGHOST", "value": host},
        {"name": "PGPORT", "value": str(PORT)},
        {"name": "PGUSER", "value": settings.user},
        {"name": "PGDATABASE", "value": settings.database},
        workload.secret_env("PGPASSWORD", SECRET, PASSWORD_KEY),
        {"name": "BACKUP_DIR", "value": BACKUP_PATH},
        {"name": "RETENTION_DAYS", "value": str(retention_days)},
    ]


def backup_pod_spec(
    settings: PostgresSettings,
    host: str,
    priority_class: str,
    extra_env: list[dict[str, Any]] | None = None,
    mode: str = "backup",
) -> dict[str, Any]:
    """The pod of a backup run: the PostgreSQL image, the script from a ConfigMap, the backup claim."""
    container = {
        "name": "backup",
        "image": settings.image,
        "image_pull_policy": "IfNotPresent",
        "command": ["/bin/sh", f"{SCRIPTS_PATH}/pg-backup.sh", mode],
        "env": [*backup_env(settings, host, settings.backup.retention_days), *(extra_env or [])],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "volume_mounts": [
            {"name": "backups", "mount_path": BACKUP_PATH},
            {"name": "scripts", "mount_path": SCRIPTS_PATH, "read_only": True},
            {"name": "tmp", "mount_path": "/tmp"},
        ],
        "termination_message_policy": "FallbackToLogsOnError",
    }
    volumes = [
        {"name": "backups", "persistent_volume_claim": {"claim_name": BACKUP_CLAIM}},
        {"name": "scripts", "config_map": {"name": f"{BACKUP_NAME}-script", "default_mode": 0o555}},
        {"name": "tmp", "empty_dir": {}},
    ]
    return workload.job_pod_spec(BACKUP_NAME, container, RUN_AS_USER, volumes, priority_class=priority_class)


def nightly_backup_manifests(
    name: str,
    settings: PostgresSettings,
    namespace: str,
    host: str,
    labels: Mapping[str, str],
    backup_selector: Mapping[str, str],
    postgres_selector: Mapping[str, str],
    priority_class: str,
) -> list[Manifest]:
    """The backup claim (stateful), the script, the backup pods' ServiceAccount and NetworkPolicy,
    and the CronJob; `labels` carry the backup selector."""
    storage = settings.backup.storage
    claim = workload.claim_template(BACKUP_CLAIM, storage.size, storage.storage_class)
    return [
        Manifest(
            f"{name}-backups",
            "PersistentVolumeClaim",
            {"metadata": workload.metadata(BACKUP_CLAIM, namespace, labels), "spec": claim["spec"]},
            stateful=True,
        ),
        config_map(
            f"{name}-backup-script", f"{BACKUP_NAME}-script", namespace, labels, {"pg-backup.sh": BACKUP_SCRIPT}
        ),
        service_account(f"{name}-backup-serviceaccount", BACKUP_NAME, namespace, labels),
        # Backup pods take no traffic and reach PostgreSQL only.
        network_policy(
            f"{name}-backup-networkpolicy",
            BACKUP_NAME,
            namespace,
            labels,
            job_to_pods_policy_spec(backup_selector, postgres_selector, PORT),
        ),
        Manifest(
            f"{name}-backup-cronjob",
            "CronJob",
            {
                "metadata": workload.metadata(BACKUP_NAME, namespace, labels),
                "spec": cronjob_spec(
                    settings.backup.schedule,
                    settings.backup.time_zone,
                    labels,
                    backup_pod_spec(settings, host, priority_class),
                    backoff_limit=2,
                    deadline_seconds=settings.migrations.timeout_seconds,
                ),
            },
        ),
    ]


def pre_migration_backup_manifest(
    request: BackupRequest,
    settings: PostgresSettings,
    namespace: str,
    instance: str,
    host: str,
    backup_selector: Mapping[str, str],
    priority_class: str,
) -> tuple[Manifest, pulumi.Output[str]]:
    """The Job a migration waits for, and the label of the dump it writes. Named after the release:
    a new image is a new Job (the old one deleted first: a rollback names an earlier Job again)."""
    label = pulumi.Output.from_input(request.release).apply(backup_label)
    labels = {**standard_labels(BACKUP_NAME, instance, "backup", "release"), **backup_selector}
    timeout = request.timeout_seconds
    pod = backup_pod_spec(settings, host, priority_class, extra_env=[{"name": "BACKUP_LABEL", "value": label}])
    job = Manifest(
        f"{request.requester_name}-backup",
        "Job",
        {
            "metadata": {
                "name": label.apply(lambda value: f"{BACKUP_NAME}-{value}"),
                "namespace": namespace,
                "labels": labels,
                "annotations": {
                    BACKUP_LABEL_ANNOTATION: label,
                    BACKUP_CLAIM_ANNOTATION: f"{namespace}/{BACKUP_CLAIM}",
                },
            },
            "spec": {
                "backoff_limit": 0,
                "active_deadline_seconds": timeout,
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        },
        custom_timeouts=pulumi.CustomTimeouts(create=f"{timeout + 60}s", update=f"{timeout + 60}s"),
        # Named after the release (see components/app/migration.py): deleted before its namesake.
        delete_before_replace=True,
        # The Job was the migration's child until the data tier took its backups over: the engine
        # moves a deployed one instead of replacing it.
        aliases=(pulumi.Alias(parent=request.requester),),
    )
    return job, label
