"""Schema migrations as part of a rollout: (the data tier's backup →) migration Job → the Deployment.

The backup Job belongs to the data tier, which this module asks through the contract
(components/contracts.py: PreMigrationBackups). Both Jobs are replaced when the image (or command)
changes, so each release migrates once, and the engine waits for them: a failed Job fails the
update before the Deployment is touched. Completed Jobs are kept (no TTL): a Job the cluster
deleted would look missing to the next refresh and run again. Both are deleted before their
replacement is created: Jobs are named after their release, so a rollback returns to the name of an
earlier Job, and an original left for deletion by a failed update would otherwise be deleted after
its namesake was created, taking the new Job with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components.contracts import BackupRequest, MigrationPlan
from components.kit import workload
from components.kit.context import TierContext
from components.kit.network import migration_policy_spec
from components.kit.objects import Manifest, network_policy, register
from components.labels import ANNOTATION_PREFIX, selector_labels, standard_labels

MIGRATION_SUFFIX = "migrations"


def migration_name(service: str) -> str:
    return f"{service}-{MIGRATION_SUFFIX}"


def migration_selector(service: str, instance: str) -> dict[str, str]:
    return selector_labels(migration_name(service), instance)


def release_hash(image: str, command: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps([image, list(command)]).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class MigrationArgs:
    service: str
    namespace: str
    context: TierContext
    image: pulumi.Input[str]
    plan: MigrationPlan
    # The service's own ConfigMap and Secret (DATABASE_URL): the migration sees what the app sees.
    config_map_name: str
    secret_name: str | None
    run_as_user: int
    # The service's objects the Jobs wait for (its ServiceAccount, ConfigMap, Secret).
    after: Sequence[pulumi.Resource] = ()


def migration_pod_spec(args: MigrationArgs) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "migrate",
        "image": args.image,
        "image_pull_policy": "IfNotPresent",
        "command": list(args.plan.command),
        "env_from": [{"config_map_ref": {"name": args.config_map_name}}],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}],
        "termination_message_policy": "FallbackToLogsOnError",
    }
    if args.secret_name is not None:
        container["env_from"].append({"secret_ref": {"name": args.secret_name}})
    return workload.job_pod_spec(args.service, container, args.run_as_user, [{"name": "tmp", "empty_dir": {}}])


# The type token says "data" for history: it is part of every URN under a migration, and a new one
# would move the Job and its NetworkPolicy in the state of every deployed stack.
MIGRATION_TYPE = "support:data:Migration"


class Migration(pulumi.ComponentResource):
    """The migration Job of one service; where planned, the data tier's backup Job runs first."""

    job: pulumi.Resource
    backup_label: pulumi.Output[str] | None

    def __init__(self, name: str, args: MigrationArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(MIGRATION_TYPE, name, None, opts)
        plan, ctx = args.plan, args.context
        job_name = migration_name(args.service)
        selector = migration_selector(args.service, ctx.instance)
        labels = {**standard_labels(job_name, ctx.instance, "migration", "release"), **selector}
        timeouts = pulumi.CustomTimeouts(create=f"{plan.timeout_seconds + 60}s", update=f"{plan.timeout_seconds + 60}s")
        after = [*args.after, *plan.depends_on]
        policy = network_policy(
            f"{name}-networkpolicy", job_name, args.namespace, labels, migration_policy_spec(selector, plan.endpoint)
        )
        register([policy], self, ctx, *after)
        self.backup_label = None
        if plan.backups is not None:
            backup = plan.backups.backup_before(
                BackupRequest(
                    requester=self,
                    requester_name=name,
                    release=args.image,
                    timeout_seconds=plan.timeout_seconds,
                    # Not plan.depends_on: that is the data tier, which the Job is part of.
                    after=list(args.after),
                )
            )
            self.backup_label = backup.label
            after.append(backup.job)
        job_object_name = pulumi.Output.from_input(args.image).apply(
            lambda image: f"{job_name}-{release_hash(image, plan.command)}"
        )
        if not pulumi.runtime.is_dry_run():
            # Said before the engine waits on the Job, so a failure reads next to how to look into it.
            job_object_name.apply(
                lambda object_name: pulumi.log.info(
                    f"migration Job {object_name} runs `{' '.join(plan.command)}` before {args.service} rolls; "
                    f"if it fails the update stops there: kubectl logs --namespace {args.namespace} job/{object_name}"
                )
            )
        logs = (
            f"kubectl logs --namespace {args.namespace} --selector "
            + ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            + " --tail=-1"
        )
        job = Manifest(
            f"{name}-job",
            "Job",
            {
                "metadata": {
                    "name": job_object_name,
                    "namespace": args.namespace,
                    "labels": labels,
                    "annotations": {f"{ANNOTATION_PREFIX}/logs": logs},
                },
                "spec": {
                    # A migration that failed once is not retried blindly: the update stops and says so.
                    "backoff_limit": 0,
                    "active_deadline_seconds": plan.timeout_seconds,
                    "template": {"metadata": {"labels": labels}, "spec": migration_pod_spec(args)},
                },
            },
            custom_timeouts=timeouts,
            delete_before_replace=True,
        )
        self.job = register([job], self, ctx, *after)[f"{name}-job"]
        self.register_outputs({"backupLabel": self.backup_label})
