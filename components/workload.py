"""The hardened workload builder: pure functions from settings to Kubernetes argument dicts.

Every service goes through here, so every pod is restricted by default: non-root with a high UID,
no privilege escalation, all capabilities dropped, RuntimeDefault seccomp, a read-only root
filesystem with emptyDir volumes for the paths that must be writable, its own ServiceAccount with
no API token, requests and limits, distinct startup/readiness/liveness probes and a graceful
shutdown. Nothing here registers resources; components wire the dicts into resources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi

from components.config import AutoscalingSettings, ProbeSettings, ServiceSettings
from components.labels import CHECKSUM_ANNOTATION


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


def metadata(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def volume_name(path: str) -> str:
    """A DNS-label volume name for a writable path: /var/cache/nginx -> writable-var-cache-nginx."""
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "root"
    return f"writable-{slug}"[:63].rstrip("-")


def probe_spec(probe: ProbeSettings) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "initial_delay_seconds": probe.initial_delay_seconds,
        "period_seconds": probe.period_seconds,
        "timeout_seconds": probe.timeout_seconds,
        "failure_threshold": probe.failure_threshold,
    }
    if probe.path is None:
        spec["tcp_socket"] = {"port": probe.port}
    else:
        spec["http_get"] = {"path": probe.path, "port": probe.port}
    return spec


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


def resources_spec(svc: ServiceSettings) -> dict[str, Any]:
    limits = {"memory": svc.resources.limits.memory}
    if svc.resources.limits.cpu is not None:
        limits["cpu"] = svc.resources.limits.cpu
    return {
        "requests": {"cpu": svc.resources.requests.cpu, "memory": svc.resources.requests.memory},
        "limits": limits,
    }


def container_spec(identity: WorkloadIdentity, svc: ServiceSettings, image: pulumi.Input[str]) -> dict[str, Any]:
    env_from = [{"config_map_ref": {"name": identity.config_map_name}}]
    secret_env = [
        {
            "name": env_name,
            "value_from": {
                "secret_key_ref": {
                    "name": identity.secret_name,
                    "key": env_name,
                    "optional": env_name in identity.optional_secret_env,
                }
            },
        }
        for env_name in sorted(svc.secret_env)
    ]
    container: dict[str, Any] = {
        "name": identity.name,
        "image": image,
        "image_pull_policy": "IfNotPresent",
        "ports": [
            {"name": port_name, "container_port": number, "protocol": "TCP"}
            for port_name, number in sorted(svc.ports.items())
        ],
        "env_from": env_from,
        "resources": resources_spec(svc),
        "startup_probe": probe_spec(svc.probes.startup),
        "readiness_probe": probe_spec(svc.probes.readiness),
        "liveness_probe": probe_spec(svc.probes.liveness),
        # Endpoints controllers and load balancers need a moment to stop sending traffic before the
        # process starts to drain; the sleep action needs no shell in the image.
        "lifecycle": {"pre_stop": {"sleep": {"seconds": svc.pre_stop_sleep_seconds}}},
        "security_context": container_security_context(svc.run_as_user),
        "volume_mounts": [{"name": volume_name(path), "mount_path": path} for path in svc.writable_paths],
        "termination_message_policy": "FallbackToLogsOnError",
    }
    if secret_env:
        container["env"] = secret_env
    if svc.command:
        container["command"] = list(svc.command)
    if svc.args:
        container["args"] = list(svc.args)
    return container


def spread_constraints(selector: dict[str, str]) -> list[dict[str, Any]]:
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


def pod_spec(
    identity: WorkloadIdentity,
    svc: ServiceSettings,
    image: pulumi.Input[str],
    termination_grace_period_seconds: int,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "service_account_name": identity.service_account_name,
        "automount_service_account_token": False,
        "enable_service_links": False,
        "security_context": pod_security_context(svc.run_as_user),
        "termination_grace_period_seconds": termination_grace_period_seconds,
        "containers": [container_spec(identity, svc, image)],
        "volumes": [{"name": volume_name(path), "empty_dir": {}} for path in svc.writable_paths],
    }
    if svc.min_replicas > 1 or svc.autoscaling.enabled:
        spec["topology_spread_constraints"] = spread_constraints(identity.selector)
    return spec


def deployment_spec(
    identity: WorkloadIdentity,
    svc: ServiceSettings,
    image: pulumi.Input[str],
    checksum: pulumi.Input[str],
    termination_grace_period_seconds: int,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"match_labels": dict(identity.selector)},
        "revision_history_limit": 10,
        "strategy": {"type": "RollingUpdate", "rolling_update": {"max_surge": 1, "max_unavailable": 0}},
        "template": {
            "metadata": {
                "labels": dict(identity.labels),
                # A change to the ConfigMap or Secret changes this value, which rolls the pods.
                "annotations": {CHECKSUM_ANNOTATION: checksum},
            },
            "spec": pod_spec(identity, svc, image, termination_grace_period_seconds),
        },
    }
    # With an HPA the autoscaler owns spec.replicas; pinning it here would fight every scale event.
    if not svc.autoscaling.enabled:
        spec["replicas"] = svc.replicas
    return spec


def service_spec(identity: WorkloadIdentity, svc: ServiceSettings) -> dict[str, Any]:
    return {
        "type": "ClusterIP",
        "selector": dict(identity.selector),
        "ports": [
            {"name": port_name, "port": number, "target_port": port_name, "protocol": "TCP"}
            for port_name, number in sorted(svc.ports.items())
        ],
    }


def hpa_spec(identity: WorkloadIdentity, autoscaling: AutoscalingSettings) -> dict[str, Any]:
    return {
        "scale_target_ref": {"api_version": "apps/v1", "kind": "Deployment", "name": identity.name},
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


def pdb_spec(identity: WorkloadIdentity) -> dict[str, Any]:
    # maxUnavailable 1 always lets a node drain proceed, unlike minAvailable = replicas.
    return {"max_unavailable": 1, "selector": {"match_labels": dict(identity.selector)}}


def needs_disruption_budget(svc: ServiceSettings) -> bool:
    # A budget for a single replica could only ever block drains (or allow everything): skip it.
    return svc.min_replicas > 1


def statefulset_spec(
    identity: WorkloadIdentity,
    svc: ServiceSettings,
    image: pulumi.Input[str],
    checksum: pulumi.Input[str],
    termination_grace_period_seconds: int,
    service_name: str,
    volume_claims: list[dict[str, Any]],
) -> dict[str, Any]:
    """A StatefulSet of the same hardened pod; `volume_claims` are volumeClaimTemplates whose names the
    caller mounts. Pods roll one at a time (OrderedReady) so the data of the others stays served."""
    return {
        "service_name": service_name,
        "replicas": svc.replicas,
        "selector": {"match_labels": dict(identity.selector)},
        "revision_history_limit": 10,
        "update_strategy": {"type": "RollingUpdate"},
        "pod_management_policy": "OrderedReady",
        "template": {
            "metadata": {"labels": dict(identity.labels), "annotations": {CHECKSUM_ANNOTATION: checksum}},
            "spec": pod_spec(identity, svc, image, termination_grace_period_seconds),
        },
        "volume_claim_templates": volume_claims,
    }
