"""Schema migrations as part of a rollout: (backup →) migration Job → the service's Deployment.

Both Jobs are replaced when the image (or command) changes, so each release migrates once, and the
engine waits for them: a failed Job fails the update before the Deployment is touched. Completed
Jobs are kept (no TTL): a Job the cluster deleted would look missing to the next refresh and run again.
They are deleted before their replacement is created: Jobs are named after their release, so a
rollback returns to the name of an earlier Job, and an original left for deletion by a failed update
would otherwise be deleted after its namesake was created, taking the new Job with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import workload
from components.config import PostgresSettings
from components.data import postgres
from components.labels import ANNOTATION_PREFIX, selector_labels, standard_labels
from components.network import DataEndpoint

# Annotations that let people (and scripts/rollback.py) find the backup taken before a migration.
BACKUP_LABEL_ANNOTATION = f"{ANNOTATION_PREFIX}/backup-label"
BACKUP_CLAIM_ANNOTATION = f"{ANNOTATION_PREFIX}/backup-claim"
MIGRATION_SUFFIX = "migrations"


def migration_name(service: str) -> str:
    return f"{service}-{MIGRATION_SUFFIX}"


def migration_selector(service: str, instance: str) -> dict[str, str]:
    return selector_labels(migration_name(service), instance)


def release_hash(image: str, command: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps([image, list(command)]).encode()).hexdigest()[:10]


def backup_label(image: str) -> str:
    """A label a dump file carries, derived from the image being rolled out: the same release
    always names the same backup, and the name fits a file name."""
    return "pre-migration-" + hashlib.sha256(image.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class PreMigrationBackup:
    """Where the backup before a migration runs: the in-cluster PostgreSQL's namespace."""

    namespace: str
    priority_class: str
    backup_selector: Mapping[str, str]


@dataclass(frozen=True)
class MigrationPlan:
    """What the platform decides about a service's migrations; the service adds its image and env."""

    command: Sequence[str]
    timeout_seconds: int
    postgres: PostgresSettings
    endpoint: DataEndpoint
    backup: PreMigrationBackup | None = None
    depends_on: Sequence[pulumi.Resource] = ()


@dataclass(frozen=True)
class MigrationArgs:
    service: str
    namespace: str
    instance: str
    image: pulumi.Input[str]
    command: Sequence[str]
    timeout_seconds: int
    postgres: PostgresSettings
    endpoint: DataEndpoint
    # The service's own ConfigMap and Secret (DATABASE_URL): the migration sees what the app sees.
    config_map_name: str
    secret_name: str | None
    run_as_user: int
    backup: PreMigrationBackup | None = None
    depends_on: Sequence[pulumi.Resource] = ()


def migration_policy_spec(selector: Mapping[str, str], endpoint: DataEndpoint) -> dict[str, Any]:
    """Migration pods take no traffic and reach PostgreSQL only."""
    return {
        "pod_selector": {"match_labels": dict(selector)},
        "policy_types": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [{"to": [endpoint.peer()], "ports": [{"protocol": "TCP", "port": endpoint.port}]}],
    }


def migration_pod_spec(args: MigrationArgs) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "migrate",
        "image": args.image,
        "image_pull_policy": "IfNotPresent",
        "command": list(args.command),
        "env_from": [{"config_map_ref": {"name": args.config_map_name}}],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "security_context": workload.container_security_context(args.run_as_user),
        "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}],
        "termination_message_policy": "FallbackToLogsOnError",
    }
    if args.secret_name is not None:
        container["env_from"].append({"secret_ref": {"name": args.secret_name}})
    return {
        "service_account_name": args.service,
        "automount_service_account_token": False,
        "enable_service_links": False,
        "restart_policy": "Never",
        "security_context": workload.pod_security_context(args.run_as_user),
        "containers": [container],
        "volumes": [{"name": "tmp", "empty_dir": {}}],
    }


class Migration(pulumi.ComponentResource):
    """The migration Job of one service (and, where configured, the backup Job before it)."""

    job: k8s.batch.v1.Job
    backup_label: pulumi.Output[str] | None

    def __init__(self, name: str, args: MigrationArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:data:Migration", name, None, opts)
        job_name = migration_name(args.service)
        selector = migration_selector(args.service, args.instance)
        labels = {**standard_labels(job_name, args.instance, "migration", "release"), **selector}
        timeouts = pulumi.CustomTimeouts(create=f"{args.timeout_seconds + 60}s", update=f"{args.timeout_seconds + 60}s")
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        k8s.networking.v1.NetworkPolicy(
            f"{name}-networkpolicy",
            metadata=workload.metadata(job_name, args.namespace, labels),
            spec=migration_policy_spec(selector, args.endpoint),
            opts=child,
        )
        before: list[pulumi.Resource] = []
        self.backup_label = None
        if args.backup is not None:
            label = pulumi.Output.from_input(args.image).apply(backup_label)
            self.backup_label = label
            b = args.backup
            backup_labels = {
                **standard_labels(postgres.BACKUP_NAME, args.instance, "backup", "release"),
                **b.backup_selector,
            }
            ident = workload.WorkloadIdentity(
                name=postgres.BACKUP_NAME,
                namespace=b.namespace,
                labels=backup_labels,
                selector=dict(b.backup_selector),
                config_map_name=f"{postgres.BACKUP_NAME}-script",
                secret_name=postgres.SECRET,
                service_account_name=postgres.BACKUP_NAME,
            )
            host = f"postgres.{b.namespace}.svc.cluster.local"
            pod = postgres.backup_pod_spec(
                args.postgres, ident, host, b.priority_class, extra_env=[{"name": "BACKUP_LABEL", "value": label}]
            )
            before.append(
                k8s.batch.v1.Job(
                    f"{name}-backup",
                    metadata={
                        # Named after the release: a new image is a new Job (the old one deleted
                        # first, see above); the dump it writes carries the same label.
                        "name": label.apply(lambda value: f"{postgres.BACKUP_NAME}-{value}"),
                        "namespace": b.namespace,
                        "labels": backup_labels,
                        "annotations": {
                            BACKUP_LABEL_ANNOTATION: label,
                            BACKUP_CLAIM_ANNOTATION: f"{b.namespace}/{postgres.BACKUP_CLAIM}",
                        },
                    },
                    spec={
                        "backoff_limit": 0,
                        "active_deadline_seconds": args.timeout_seconds,
                        "template": {"metadata": {"labels": backup_labels}, "spec": pod},
                    },
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        depends_on=list(args.depends_on),
                        custom_timeouts=timeouts,
                        delete_before_replace=True,
                    ),
                )
            )
        job_object_name = pulumi.Output.from_input(args.image).apply(
            lambda image: f"{job_name}-{release_hash(image, args.command)}"
        )
        if not pulumi.runtime.is_dry_run():
            # Said before the engine waits on the Job, so a failure reads next to how to look into it.
            job_object_name.apply(
                lambda object_name: pulumi.log.info(
                    f"migration Job {object_name} runs `{' '.join(args.command)}` before {args.service} rolls; "
                    f"if it fails the update stops there: kubectl logs --namespace {args.namespace} job/{object_name}"
                )
            )
        self.job = k8s.batch.v1.Job(
            f"{name}-job",
            metadata={
                "name": job_object_name,
                "namespace": args.namespace,
                "labels": labels,
                "annotations": {
                    f"{ANNOTATION_PREFIX}/logs": f"kubectl logs --namespace {args.namespace} --selector "
                    + ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
                    + " --tail=-1",
                },
            },
            spec={
                # A migration that failed once is not retried blindly: the update stops and says so.
                "backoff_limit": 0,
                "active_deadline_seconds": args.timeout_seconds,
                "template": {"metadata": {"labels": labels}, "spec": migration_pod_spec(args)},
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*args.depends_on, *before],
                custom_timeouts=timeouts,
                delete_before_replace=True,
            ),
        )
        self.register_outputs({"backupLabel": self.backup_label})
