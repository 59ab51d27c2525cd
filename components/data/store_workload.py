"""What every in-cluster store shares: its context in the tier, its workload, its kit, its CronJobs.

A store is a StatefulSet of the hardened pod (non-root, read-only root filesystem, no API token),
a headless Service for its stable pod names, a client Service with explicit name (what endpoints
point at), a ServiceAccount, and a NetworkPolicy that admits exactly the declared clients to the
store port and the metrics scraper to the metrics port. PostgreSQL, Redis and Chroma add their
configuration and probes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components.config import ResourceSettings, StorageSettings
from components.contracts import Client
from components.kit import workload
from components.kit.context import TierContext
from components.kit.network import store_policy_spec
from components.kit.objects import Manifest, workload_kit
from components.kit.workload import METRICS_PORT_NAME
from components.labels import image_version, selector_labels, standard_labels

RUN_AS_USER = 10001


@dataclass(frozen=True)
class StoreContext:
    """What every store component needs from the tier, decided before any resource exists."""

    # The tier's context: protect decides for claims and StatefulSets; `after` holds the data
    # namespace and the PriorityClass.
    tier: TierContext
    namespace: str
    clients: Sequence[Client]
    # Pods allowed to the metrics port (Prometheus, in the monitoring namespace); None: closed.
    scraper: Mapping[str, str] | None
    priority_class: str


def store_workload(
    name: str,
    ctx: StoreContext,
    component: str,
    image: str,
    ports: Mapping[str, int],
    resources: ResourceSettings,
    probes: Mapping[str, Mapping[str, Any]],
    *,
    writable_paths: Sequence[str],
    grace_seconds: int,
    args: Sequence[str],
    env: Sequence[Mapping[str, Any]] = (),
    lifecycle: Mapping[str, Any] | None = None,
    sidecars: Sequence[Mapping[str, Any]] = (),
) -> workload.WorkloadSpec:
    """A store as the hardened builder's input: one replica, the tier's PriorityClass, literal env
    only, and only the exporter declaring the metrics port the Service carries."""
    identity = workload.WorkloadIdentity(
        name=name,
        namespace=ctx.namespace,
        labels=standard_labels(name, ctx.tier.instance, component, image_version(image)),
        selector=selector_labels(name, ctx.tier.instance),
        config_map_name=f"{name}-env",
        secret_name=None,
        service_account_name=name,
    )
    return workload.WorkloadSpec(
        identity=identity,
        image=image,
        ports=ports,
        container_ports={n: p for n, p in ports.items() if n != METRICS_PORT_NAME},
        probes=probes,
        resources=workload.resources_spec(resources),
        run_as_user=RUN_AS_USER,
        termination_grace_period_seconds=grace_seconds,
        writable_paths=writable_paths,
        args=args,
        env=env,
        env_from_config_map=False,
        lifecycle=lifecycle,
        priority_class=ctx.priority_class,
        # Only chown a fresh volume: a recursive pass over a large one delays every restart (and would
        # widen PGDATA's mode, which PostgreSQL refuses).
        fs_group_change_policy="OnRootMismatch",
        sidecars=sidecars,
    )


def store_statefulset_spec(
    spec: workload.WorkloadSpec, checksum: pulumi.Input[str], storage: StorageSettings, ctx: StoreContext
) -> dict[str, Any]:
    """One claim named `data` per pod; claims are retained where the tier protects."""
    claims = [workload.claim_template("data", storage.size, storage.storage_class)]
    return workload.statefulset_spec(spec, checksum, f"{spec.identity.name}-headless", claims, ctx.tier.protect)


def store_kit(name: str, spec: workload.WorkloadSpec, clients: Sequence[Client], ctx: StoreContext) -> list[Manifest]:
    """ServiceAccount (no token), client and headless Services, and the NetworkPolicy of one store."""
    identity = spec.identity
    store_port = next(p for p in sorted(spec.ports) if p != METRICS_PORT_NAME)
    metrics = METRICS_PORT_NAME if METRICS_PORT_NAME in spec.ports else None
    policy = store_policy_spec(
        identity.selector, store_port, clients, ctx.scraper, ctx.tier.network.monitoring_namespace, metrics
    )
    return workload_kit(name, identity, spec.ports, policy, headless=True)


def sidecar(
    name: str,
    image: str,
    port: int,
    env: Sequence[Mapping[str, Any]],
    ready_path: str,
    alive_path: str,
    args: Sequence[str] = (),
) -> dict[str, Any]:
    """An exporter next to the store: same restrictions, small fixed resources, HTTP probes (ready:
    it serves; alive: its own page, not the store's state, so a store outage restarts nothing)."""
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "image_pull_policy": "IfNotPresent",
        "ports": [{"name": METRICS_PORT_NAME, "container_port": port, "protocol": "TCP"}],
        "env": [dict(e) for e in env],
        "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
        "startup_probe": workload.http_probe(alive_path, METRICS_PORT_NAME, 5, 30),
        "readiness_probe": workload.http_probe(ready_path, METRICS_PORT_NAME, 10, 3),
        "liveness_probe": workload.http_probe(alive_path, METRICS_PORT_NAME, 20, 3),
        "security_context": workload.container_security_context(RUN_AS_USER),
        "termination_message_policy": "FallbackToLogsOnError",
    }
    if args:
        container["args"] = list(args)
    return container


def cronjob_spec(
    schedule: str,
    time_zone: str,
    labels: Mapping[str, str],
    pod: dict[str, Any],
    backoff_limit: int,
    deadline_seconds: int,
    pod_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A scheduled maintenance run of the tier (backups, snapshots): one run at a time, and a run
    missed by more than an hour waits for the next slot; the last three of each outcome are kept."""
    template: dict[str, Any] = {"metadata": {"labels": dict(labels)}, "spec": pod}
    if pod_annotations:
        template["metadata"]["annotations"] = dict(pod_annotations)
    return {
        "schedule": schedule,
        "time_zone": time_zone,
        "concurrency_policy": "Forbid",
        "starting_deadline_seconds": 3600,
        "successful_jobs_history_limit": 3,
        "failed_jobs_history_limit": 3,
        "job_template": {
            "metadata": {"labels": dict(labels)},
            "spec": {
                "backoff_limit": backoff_limit,
                "active_deadline_seconds": deadline_seconds,
                "template": template,
            },
        },
    }
