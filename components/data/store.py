"""The kit every in-cluster store shares, as pure builders plus one registration helper.

A store is a StatefulSet of the hardened pod (non-root, read-only root filesystem, no API token),
a headless Service for its stable pod names, a client Service with explicit name (what endpoints
point at), a ServiceAccount, and a NetworkPolicy that admits exactly the declared clients to the
store port and the metrics scraper to the metrics port. PostgreSQL, Redis and Chroma add their
configuration and probes.
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
from components.config import ProbesSettings, ResourceSettings, ServiceSettings, StorageSettings
from components.labels import image_version, selector_labels, standard_labels
from components.network import NAMESPACE_NAME_LABEL

RUN_AS_USER = 10001
METRICS_PORT_NAME = "metrics"


@dataclass(frozen=True)
class Client:
    """A pod group declared to connect to a store: the only pods its NetworkPolicy admits."""

    name: str
    namespace: str
    selector: Mapping[str, str]


@dataclass(frozen=True)
class StoreContext:
    """What every store component needs from the tier, decided before any resource exists."""

    namespace: str
    instance: str
    clients: Sequence[Client]
    # Pods allowed to the metrics port (Prometheus), in `monitoring_namespace`; None: closed.
    scraper: Mapping[str, str] | None
    monitoring_namespace: str
    priority_class: str
    protect: bool
    # Resources that must exist first (the namespace, the PriorityClass).
    depends_on: Sequence[pulumi.Resource] = ()

    def options(self, parent: pulumi.Resource, *after: pulumi.Resource) -> pulumi.ResourceOptions:
        """A store's child: after the tier's namespace and PriorityClass (and `after`)."""
        return pulumi.ResourceOptions(parent=parent, depends_on=[*self.depends_on, *after])

    def stateful_options(self, parent: pulumi.Resource, *after: pulumi.Resource) -> pulumi.ResourceOptions:
        """What holds data: protected and kept on delete where the tier protects (production)."""
        return pulumi.ResourceOptions(
            parent=parent, depends_on=[*self.depends_on, *after], protect=self.protect, retain_on_delete=self.protect
        )


def store_service(
    component: str,
    image: str,
    ports: Mapping[str, int],
    resources: ResourceSettings,
    writable_paths: Sequence[str],
    grace_seconds: int,
    env: Mapping[str, str] | None = None,
) -> ServiceSettings:
    """A store as hardened-builder input; its probes are replaced by exec/HTTP probes afterwards."""
    store_port = next(p for p in sorted(ports) if p != METRICS_PORT_NAME)
    tcp = {"port": store_port}
    # Constructed, not validated: app-service rules (an "http" port, HTTP readiness) do not apply
    # to a database; every field the builder reads is set here from validated parts.
    return ServiceSettings.model_construct(
        component=component,
        image=image,
        ports=dict(ports),
        probes=ProbesSettings.model_validate({"startup": tcp, "readiness": {**tcp, "path": "/"}, "liveness": tcp}),
        replicas=1,
        resources=resources,
        writable_paths=list(writable_paths),
        run_as_user=RUN_AS_USER,
        env=dict(env or {}),
        termination_grace_period_seconds=grace_seconds,
        # Stores stop on their own signal handling; no load balancer needs time to forget them.
        pre_stop_sleep_seconds=1,
    )


def exec_probe(command: Sequence[str], period: int, failures: int, timeout: int = 5, delay: int = 0) -> dict[str, Any]:
    return {
        "exec_": {"command": list(command)},
        "initial_delay_seconds": delay,
        "period_seconds": period,
        "timeout_seconds": timeout,
        "failure_threshold": failures,
    }


def http_probe(path: str, port: str, period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
    return {
        "http_get": {"path": path, "port": port},
        "period_seconds": period,
        "timeout_seconds": timeout,
        "failure_threshold": failures,
    }


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
        "startup_probe": http_probe(alive_path, METRICS_PORT_NAME, 5, 30),
        "readiness_probe": http_probe(ready_path, METRICS_PORT_NAME, 10, 3),
        "liveness_probe": http_probe(alive_path, METRICS_PORT_NAME, 20, 3),
        "security_context": workload.container_security_context(RUN_AS_USER),
        "termination_message_policy": "FallbackToLogsOnError",
    }
    if args:
        container["args"] = list(args)
    return container


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "value_from": {"secret_key_ref": {"name": secret, "key": key}}}


def claim_template(name: str, storage: StorageSettings) -> dict[str, Any]:
    spec: dict[str, Any] = {"access_modes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage.size}}}
    if storage.storage_class is not None:
        spec["storage_class_name"] = storage.storage_class
    return {"metadata": {"name": name}, "spec": spec}


def store_policy_spec(
    selector: Mapping[str, str],
    port_name: str,
    clients: Sequence[Client],
    scraper: Mapping[str, str] | None,
    monitoring_namespace: str,
    has_metrics: bool,
) -> dict[str, Any]:
    """Ingress: the declared clients to the store port, the scraper to the metrics port. Egress:
    none (DNS comes from the namespace's policy); a store calls nobody."""
    ingress: list[dict[str, Any]] = []
    if clients:
        ingress.append(
            {
                "from_": [
                    {
                        "namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: c.namespace}},
                        "pod_selector": {"match_labels": dict(c.selector)},
                    }
                    for c in sorted(clients, key=lambda c: (c.namespace, c.name))
                ],
                "ports": [{"protocol": "TCP", "port": port_name}],
            }
        )
    if has_metrics and scraper is not None:
        ingress.append(
            {
                "from_": [
                    {
                        "namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: monitoring_namespace}},
                        "pod_selector": {"match_labels": dict(scraper)},
                    }
                ],
                "ports": [{"protocol": "TCP", "port": METRICS_PORT_NAME}],
            }
        )
    return {
        "pod_selector": {"match_labels": dict(selector)},
        "policy_types": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": [],
    }


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


def secret_data(values: Mapping[str, pulumi.Output[str]]) -> dict[str, pulumi.Output[str]]:
    # Secret again, whatever the source said: the data must never be stored in plaintext state.
    data: dict[str, pulumi.Output[str]] = {}
    for key, value in values.items():
        data[key] = pulumi.Output.secret(value)
    return data


def digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def identity(name: str, ctx: StoreContext, svc: ServiceSettings) -> workload.WorkloadIdentity:
    assert svc.image is not None
    return workload.WorkloadIdentity(
        name=name,
        namespace=ctx.namespace,
        labels=standard_labels(name, ctx.instance, svc.component, image_version(svc.image)),
        selector=selector_labels(name, ctx.instance),
        config_map_name=f"{name}-env",
        secret_name=None,
        service_account_name=name,
    )


def statefulset_spec(
    ident: workload.WorkloadIdentity,
    svc: ServiceSettings,
    checksum: pulumi.Input[str],
    claims: list[dict[str, Any]],
    ctx: StoreContext,
) -> dict[str, Any]:
    assert svc.image is not None and svc.termination_grace_period_seconds is not None
    spec = workload.statefulset_spec(
        ident, svc, svc.image, checksum, svc.termination_grace_period_seconds, f"{ident.name}-headless", claims
    )
    pod = spec["template"]["spec"]
    main = pod["containers"][0]
    # The Service carries the exporter's port; in the pod only the exporter declares it.
    main["ports"] = [p for p in main["ports"] if p["name"] != METRICS_PORT_NAME]
    pod["priority_class_name"] = ctx.priority_class
    # Only chown a fresh volume: a recursive pass over a large one delays every restart (and would
    # widen PGDATA's mode, which PostgreSQL refuses).
    pod["security_context"]["fs_group_change_policy"] = "OnRootMismatch"
    # The store's own env comes from literal settings only; no ConfigMap is referenced.
    pod["containers"][0].pop("env_from", None)
    # Claims outlive the StatefulSet where data must never be lost by a delete or a scale-down.
    if ctx.protect:
        spec["persistent_volume_claim_retention_policy"] = {"when_deleted": "Retain", "when_scaled": "Retain"}
    return spec


def mount(
    pod: dict[str, Any], name: str, path: str, source: dict[str, Any] | None, sub_path: str | None = None
) -> None:
    """Mount a volume into the store container: a config source (read-only) or a claim (source None)."""
    entry: dict[str, Any] = {"name": name, "mount_path": path}
    if source is not None:
        entry["read_only"] = True
        pod["volumes"].append({"name": name, **source})
    if sub_path is not None:
        entry["sub_path"] = sub_path
    pod["containers"][0]["volume_mounts"].append(entry)


def register_kit(
    name: str,
    ident: workload.WorkloadIdentity,
    ports: Mapping[str, int],
    clients: Sequence[Client],
    ctx: StoreContext,
    has_metrics: bool,
    opts: pulumi.ResourceOptions,
) -> None:
    """ServiceAccount (no token), client and headless Services, and the NetworkPolicy of one store."""
    ns = ctx.namespace
    k8s.core.v1.ServiceAccount(
        f"{name}-serviceaccount",
        metadata=workload.metadata(ident.service_account_name, ns, ident.labels),
        automount_service_account_token=False,
        opts=opts,
    )
    service_ports = [
        {"name": port_name, "port": number, "target_port": port_name, "protocol": "TCP"}
        for port_name, number in sorted(ports.items())
    ]
    k8s.core.v1.Service(
        f"{name}-service",
        metadata=workload.metadata(ident.name, ns, ident.labels),
        spec={"type": "ClusterIP", "selector": dict(ident.selector), "ports": service_ports},
        opts=opts,
    )
    k8s.core.v1.Service(
        f"{name}-headless",
        metadata=workload.metadata(f"{ident.name}-headless", ns, ident.labels),
        # Stable per-pod DNS names (postgres-0.postgres-headless), including while a pod starts.
        spec={
            "cluster_ip": "None",
            "publish_not_ready_addresses": True,
            "selector": dict(ident.selector),
            "ports": service_ports,
        },
        opts=opts,
    )
    store_port = next(p for p in sorted(ports) if p != METRICS_PORT_NAME)
    k8s.networking.v1.NetworkPolicy(
        f"{name}-networkpolicy",
        metadata=workload.metadata(ident.name, ns, ident.labels),
        spec=store_policy_spec(ident.selector, store_port, clients, ctx.scraper, ctx.monitoring_namespace, has_metrics),
        opts=opts,
    )
