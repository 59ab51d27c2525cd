"""The hardened workload builder: one neutral spec, pure functions from it to Kubernetes argument dicts.

App services, stores and monitoring servers each describe their pod as a WorkloadSpec, and every pod
comes out of here restricted by default: non-root with a high UID, no privilege escalation, all
capabilities dropped, RuntimeDefault seccomp, a read-only root filesystem with emptyDir volumes for
the paths that must be writable, its own ServiceAccount with no API token (unless the spec says it
calls the API), requests and limits, distinct startup/readiness/liveness probes and a graceful
shutdown. Nothing here registers resources; components register what these dicts describe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.config import AutoscalingSettings, ProbeSettings, ResourceSettings
from components.labels import CHECKSUM_ANNOTATION

# The port name every workload's metrics are scraped on when it has a port of that name.
METRICS_PORT_NAME = "metrics"


@dataclass(frozen=True)
class WorkloadIdentity:
    """Names and labels of one workload, decided from settings before any resource exists."""

    name: str
    namespace: str
    labels: dict[str, str]
    selector: dict[str, str]
    config_map_name: str
    secret_name: str | None
    service_account_name: str
    # Secret env whose source is an optional external secret left unset (dev only): the pod starts
    # without the variable instead of failing on a missing Secret key.
    optional_secret_env: frozenset[str] = frozenset()


@dataclass(frozen=True)
class WorkloadSpec:
    """One pod's main container and what its controller needs, whoever describes it."""

    identity: WorkloadIdentity
    image: pulumi.Input[str]
    # Named ports of the Service; the main container declares `container_ports` (default: the same).
    ports: Mapping[str, int]
    # startup, readiness, liveness: probe dicts (see `probe`).
    probes: Mapping[str, Mapping[str, Any]]
    resources: Mapping[str, Any]
    run_as_user: int
    termination_grace_period_seconds: int
    writable_paths: Sequence[str] = ("/tmp",)
    container_ports: Mapping[str, int] | None = None
    command: Sequence[str] | None = None
    args: Sequence[str] | None = None
    env: Sequence[Mapping[str, Any]] = ()
    # envFrom the identity's ConfigMap (the app's non-secret env); stores read literal env only.
    env_from_config_map: bool = True
    # preStop: the container's lifecycle, or None for none.
    lifecycle: Mapping[str, Any] | None = None
    replicas: int = 1
    autoscaling: AutoscalingSettings | None = None
    # The pod mounts its ServiceAccount's token: it calls the Kubernetes API (say why in an annotation).
    api_token: bool = False
    priority_class: str | None = None
    fs_group_change_policy: str | None = None
    sidecars: Sequence[Mapping[str, Any]] = field(default_factory=tuple)

    @property
    def autoscaled(self) -> bool:
        return self.autoscaling is not None and self.autoscaling.enabled

    @property
    def min_replicas(self) -> int:
        """The fewest pods that run in steady state: what disruption budgets and spreading key off."""
        if self.autoscaling is not None and self.autoscaling.enabled and self.autoscaling.min_replicas is not None:
            return self.autoscaling.min_replicas
        return self.replicas


def metadata(name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def volume_name(path: str) -> str:
    """A DNS-label volume name for a writable path: /var/cache/nginx -> writable-var-cache-nginx."""
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "root"
    return f"writable-{slug}"[:63].rstrip("-")


def probe(
    check: Mapping[str, Any], period: int, failures: int, timeout: int, initial_delay: int | None = None
) -> dict[str, Any]:
    """A probe: `check` is one of {"http_get": ...}, {"tcp_socket": ...}, {"exec_": ...}."""
    spec: dict[str, Any] = {}
    if initial_delay is not None:
        spec["initial_delay_seconds"] = initial_delay
    spec |= {"period_seconds": period, "timeout_seconds": timeout, "failure_threshold": failures}
    return {**spec, **check}


def settings_probe(settings: ProbeSettings) -> dict[str, Any]:
    """A probe from settings: an HTTP GET on `path`, or a TCP check where it has none."""
    check = (
        {"tcp_socket": {"port": settings.port}}
        if settings.path is None
        else {"http_get": {"path": settings.path, "port": settings.port}}
    )
    return probe(
        check,
        settings.period_seconds,
        settings.failure_threshold,
        settings.timeout_seconds,
        initial_delay=settings.initial_delay_seconds,
    )


def http_probe(path: str, port: str, period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
    return probe({"http_get": {"path": path, "port": port}}, period, failures, timeout)


def exec_probe(command: Sequence[str], period: int, failures: int, timeout: int = 5, delay: int = 0) -> dict[str, Any]:
    return probe({"exec_": {"command": list(command)}}, period, failures, timeout, initial_delay=delay)


def pre_stop_sleep(seconds: int) -> dict[str, Any]:
    # Endpoints controllers and load balancers need a moment to stop sending traffic before the
    # process starts to drain; the sleep action needs no shell in the image.
    return {"pre_stop": {"sleep": {"seconds": seconds}}}


def resources_spec(resources: ResourceSettings) -> dict[str, Any]:
    limits = {"memory": resources.limits.memory}
    if resources.limits.cpu is not None:
        limits["cpu"] = resources.limits.cpu
    return {
        "requests": {"cpu": resources.requests.cpu, "memory": resources.requests.memory},
        "limits": limits,
    }


def container_security_context(uid: int) -> dict[str, Any]:
    return {
        "run_as_non_root": True,
        "run_as_user": uid,
        "run_as_group": uid,
        "allow_privilege_escalation": False,
        "privileged": False,
        "read_only_root_filesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def pod_security_context(uid: int) -> dict[str, Any]:
    return {
        "run_as_non_root": True,
        "run_as_user": uid,
        "run_as_group": uid,
        "fs_group": uid,
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def secret_env(name: str, secret: str, key: str, optional: bool | None = None) -> dict[str, Any]:
    """An env var from a Secret key."""
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional is not None:
        ref["optional"] = optional
    return {"name": name, "value_from": {"secret_key_ref": ref}}


def container_spec(spec: WorkloadSpec) -> dict[str, Any]:
    identity = spec.identity
    ports = spec.ports if spec.container_ports is None else spec.container_ports
    container: dict[str, Any] = {
        "name": identity.name,
        "image": spec.image,
        "image_pull_policy": "IfNotPresent",
        "ports": [
            {"name": port_name, "container_port": number, "protocol": "TCP"}
            for port_name, number in sorted(ports.items())
        ],
        "resources": dict(spec.resources),
        "startup_probe": dict(spec.probes["startup"]),
        "readiness_probe": dict(spec.probes["readiness"]),
        "liveness_probe": dict(spec.probes["liveness"]),
        "security_context": container_security_context(spec.run_as_user),
        "volume_mounts": [{"name": volume_name(path), "mount_path": path} for path in spec.writable_paths],
        "termination_message_policy": "FallbackToLogsOnError",
    }
    if spec.env_from_config_map:
        container["env_from"] = [{"config_map_ref": {"name": identity.config_map_name}}]
    if spec.lifecycle is not None:
        container["lifecycle"] = dict(spec.lifecycle)
    if spec.env:
        container["env"] = [dict(e) for e in spec.env]
    if spec.command:
        container["command"] = list(spec.command)
    if spec.args:
        container["args"] = list(spec.args)
    return container


def spread_constraints(selector: Mapping[str, str]) -> list[dict[str, Any]]:
    """Spread replicas over nodes and zones; ScheduleAnyway so a small cluster still schedules."""
    return [
        {
            "max_skew": 1,
            "topology_key": key,
            "when_unsatisfiable": "ScheduleAnyway",
            "label_selector": {"match_labels": dict(selector)},
        }
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]


def pod_spec(spec: WorkloadSpec) -> dict[str, Any]:
    identity = spec.identity
    security = pod_security_context(spec.run_as_user)
    if spec.fs_group_change_policy is not None:
        security["fs_group_change_policy"] = spec.fs_group_change_policy
    pod: dict[str, Any] = {
        "service_account_name": identity.service_account_name,
        "automount_service_account_token": spec.api_token,
        "enable_service_links": False,
        "security_context": security,
        "termination_grace_period_seconds": spec.termination_grace_period_seconds,
        "containers": [container_spec(spec), *(dict(s) for s in spec.sidecars)],
        "volumes": [{"name": volume_name(path), "empty_dir": {}} for path in spec.writable_paths],
    }
    if spec.priority_class is not None:
        pod["priority_class_name"] = spec.priority_class
    if spec.min_replicas > 1 or spec.autoscaled:
        pod["topology_spread_constraints"] = spread_constraints(identity.selector)
    return pod


def mount(
    pod: dict[str, Any],
    name: str,
    path: str,
    source: Mapping[str, Any] | None,
    sub_path: str | None = None,
    read_only: bool | None = None,
) -> None:
    """Mount a volume into the main container: a config source (read-only) or a claim of the
    StatefulSet (source None). `read_only` given: said in the mount either way."""
    entry: dict[str, Any] = {"name": name, "mount_path": path}
    if source is not None:
        pod["volumes"].append({"name": name, **source})
    if read_only is not None:
        entry["read_only"] = read_only
    elif source is not None:
        entry["read_only"] = True
    if sub_path is not None:
        entry["sub_path"] = sub_path
    pod["containers"][0]["volume_mounts"].append(entry)


def _template(spec: WorkloadSpec, checksum: pulumi.Input[str]) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": dict(spec.identity.labels),
            # A change to what the pods read at start changes this value, which rolls them.
            "annotations": {CHECKSUM_ANNOTATION: checksum},
        },
        "spec": pod_spec(spec),
    }


def deployment_spec(spec: WorkloadSpec, checksum: pulumi.Input[str]) -> dict[str, Any]:
    deployment: dict[str, Any] = {
        "selector": {"match_labels": dict(spec.identity.selector)},
        "revision_history_limit": 10,
        "strategy": {"type": "RollingUpdate", "rolling_update": {"max_surge": 1, "max_unavailable": 0}},
        "template": _template(spec, checksum),
    }
    # With an HPA the autoscaler owns spec.replicas; pinning it here would fight every scale event.
    if not spec.autoscaled:
        deployment["replicas"] = spec.replicas
    return deployment


def statefulset_spec(
    spec: WorkloadSpec,
    checksum: pulumi.Input[str],
    service_name: str,
    volume_claims: Sequence[Mapping[str, Any]],
    retain_claims: bool,
) -> dict[str, Any]:
    """A StatefulSet of the same hardened pod; `volume_claims` are volumeClaimTemplates whose names the
    caller mounts. Pods roll one at a time (OrderedReady) so the data of the others stays served."""
    statefulset: dict[str, Any] = {
        "service_name": service_name,
        "replicas": spec.replicas,
        "selector": {"match_labels": dict(spec.identity.selector)},
        "revision_history_limit": 10,
        "update_strategy": {"type": "RollingUpdate"},
        "pod_management_policy": "OrderedReady",
        "template": _template(spec, checksum),
        "volume_claim_templates": [dict(c) for c in volume_claims],
    }
    # Claims outlive the StatefulSet where data must never be lost by a delete or a scale-down.
    if retain_claims:
        statefulset["persistent_volume_claim_retention_policy"] = {"when_deleted": "Retain", "when_scaled": "Retain"}
    return statefulset


def claim_template(name: str, size: str, storage_class: str | None) -> dict[str, Any]:
    claim: dict[str, Any] = {"access_modes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        claim["storage_class_name"] = storage_class
    return {"metadata": {"name": name}, "spec": claim}


def service_spec(selector: Mapping[str, str], ports: Mapping[str, int], headless: bool = False) -> dict[str, Any]:
    service_ports = [
        {"name": port_name, "port": number, "target_port": port_name, "protocol": "TCP"}
        for port_name, number in sorted(ports.items())
    ]
    if headless:
        # Stable per-pod DNS names (postgres-0.postgres-headless), including while a pod starts.
        return {
            "cluster_ip": "None",
            "publish_not_ready_addresses": True,
            "selector": dict(selector),
            "ports": service_ports,
        }
    return {"type": "ClusterIP", "selector": dict(selector), "ports": service_ports}


def hpa_spec(name: str, autoscaling: AutoscalingSettings) -> dict[str, Any]:
    return {
        "scale_target_ref": {"api_version": "apps/v1", "kind": "Deployment", "name": name},
        "min_replicas": autoscaling.min_replicas,
        "max_replicas": autoscaling.max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": resource, "target": {"type": "Utilization", "average_utilization": target}},
            }
            for resource, target in (
                ("cpu", autoscaling.cpu_utilization),
                ("memory", autoscaling.memory_utilization),
            )
        ],
        # Scale up quickly on load, down slowly: a long stabilisation window avoids flapping, and
        # shedding 10 % a minute keeps in-flight streams on surviving pods.
        "behavior": {
            "scale_up": {
                "stabilization_window_seconds": 60,
                "select_policy": "Max",
                "policies": [{"type": "Percent", "value": 50, "period_seconds": 60}],
            },
            "scale_down": {
                "stabilization_window_seconds": 300,
                "select_policy": "Min",
                "policies": [{"type": "Percent", "value": 10, "period_seconds": 60}],
            },
        },
    }


def pdb_spec(selector: Mapping[str, str]) -> dict[str, Any]:
    # maxUnavailable 1 always lets a node drain proceed, unlike minAvailable = replicas.
    return {"max_unavailable": 1, "selector": {"match_labels": dict(selector)}}


def needs_disruption_budget(spec: WorkloadSpec) -> bool:
    # A budget for a single replica could only ever block drains (or allow everything): skip it.
    return spec.min_replicas > 1


def job_pod_spec(
    service_account: str,
    container: Mapping[str, Any],
    run_as_user: int,
    volumes: Sequence[Mapping[str, Any]],
    priority_class: str | None = None,
    api_token: bool = False,
) -> dict[str, Any]:
    """The pod of a run-to-completion Job (migrations, backups, snapshots): restricted like every pod."""
    pod: dict[str, Any] = {
        "service_account_name": service_account,
        "automount_service_account_token": api_token,
        "enable_service_links": False,
        "restart_policy": "Never",
    }
    if priority_class is not None:
        pod["priority_class_name"] = priority_class
    pod |= {
        "security_context": pod_security_context(run_as_user),
        "containers": [{**container, "security_context": container_security_context(run_as_user)}],
        "volumes": [dict(v) for v in volumes],
    }
    return pod
