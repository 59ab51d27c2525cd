"""What a component registers, described by pure builders: a Manifest per object, and the kit every
workload gets (ServiceAccount, ConfigMap, Secret, Service, NetworkPolicy).

Components build lists of Manifests from settings and hand them to `register`, which creates the
Kubernetes resources in order (edge.py was the model); the logical name of a Manifest is the
resource's name in the Pulumi state, so changing one needs an alias.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.kit.context import TierContext
from components.kit.workload import WorkloadIdentity, metadata, service_spec

KINDS: dict[str, Any] = {
    "ClusterRole": k8s.rbac.v1.ClusterRole,
    "ClusterRoleBinding": k8s.rbac.v1.ClusterRoleBinding,
    "ConfigMap": k8s.core.v1.ConfigMap,
    "CronJob": k8s.batch.v1.CronJob,
    "Deployment": k8s.apps.v1.Deployment,
    "HorizontalPodAutoscaler": k8s.autoscaling.v2.HorizontalPodAutoscaler,
    "Ingress": k8s.networking.v1.Ingress,
    "Job": k8s.batch.v1.Job,
    "Namespace": k8s.core.v1.Namespace,
    "NetworkPolicy": k8s.networking.v1.NetworkPolicy,
    "PersistentVolumeClaim": k8s.core.v1.PersistentVolumeClaim,
    "PodDisruptionBudget": k8s.policy.v1.PodDisruptionBudget,
    "PriorityClass": k8s.scheduling.v1.PriorityClass,
    "Role": k8s.rbac.v1.Role,
    "RoleBinding": k8s.rbac.v1.RoleBinding,
    "Secret": k8s.core.v1.Secret,
    "Service": k8s.core.v1.Service,
    "ServiceAccount": k8s.core.v1.ServiceAccount,
    "StatefulSet": k8s.apps.v1.StatefulSet,
}


# The kind of a Manifest that is a custom resource (its fields name its own apiVersion and kind).
CUSTOM_RESOURCE = "CustomResource"


@dataclass(frozen=True)
class Manifest:
    """One object to register: its logical (state) name, kind and arguments."""

    logical: str
    kind: str
    # The resource's arguments in the SDK's snake_case (metadata=..., spec=...); a CUSTOM_RESOURCE
    # gives api_version, kind, metadata and spec in the API's camelCase.
    fields: Mapping[str, Any]
    # Holds data: protected and kept on delete where the tier protects.
    stateful: bool = False
    # Logical names of manifests of the same list that must exist first.
    after: tuple[str, ...] = ()
    custom_timeouts: pulumi.CustomTimeouts | None = None
    aliases: tuple[pulumi.Alias, ...] = ()
    # Replaced by deleting first: for objects named after a release, which a rollback names again.
    delete_before_replace: bool = False


def register(
    manifests: Sequence[Manifest],
    parent: pulumi.Resource,
    ctx: TierContext,
    *after: pulumi.Resource,
) -> dict[str, pulumi.CustomResource]:
    """Register every manifest as a child of `parent` (after the tier's prerequisites and `after`)."""
    registered: dict[str, pulumi.CustomResource] = {}
    for manifest in manifests:
        opts = ctx.options(
            parent,
            *after,
            *(registered[name] for name in manifest.after),
            stateful=manifest.stateful,
            aliases=list(manifest.aliases) or None,
            custom_timeouts=manifest.custom_timeouts,
            delete_before_replace=manifest.delete_before_replace,
        )
        if manifest.kind != CUSTOM_RESOURCE:
            resource = KINDS[manifest.kind](manifest.logical, **manifest.fields, opts=opts)
        else:
            # Custom resources: their CRDs come with the cluster's installations (gateway,
            # cert-manager, the Prometheus Operator), and tests validate them against the schemas.
            resource = k8s.apiextensions.CustomResource(manifest.logical, **manifest.fields, opts=opts)
        registered[manifest.logical] = resource
    return registered


def digest(payload: Any) -> str:
    """A digest of what pods read at start, for the checksum annotation that rolls them on a change."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def secret_string_data(values: Mapping[str, pulumi.Input[str]]) -> dict[str, pulumi.Output[str]]:
    # Secret again, whatever the source said: the data must never be stored in plaintext state.
    data: dict[str, pulumi.Output[str]] = {}
    for key, value in values.items():
        data[key] = pulumi.Output.secret(value)
    return data


def service_account(logical: str, name: str, namespace: str, labels: Mapping[str, str]) -> Manifest:
    # No token is mounted unless a pod opts in (and says why).
    return Manifest(
        logical,
        "ServiceAccount",
        {"metadata": metadata(name, namespace, labels), "automount_service_account_token": False},
    )


def config_map(logical: str, name: str, namespace: str, labels: Mapping[str, str], data: Any) -> Manifest:
    return Manifest(logical, "ConfigMap", {"metadata": metadata(name, namespace, labels), "data": data})


def secret(
    logical: str, name: str, namespace: str, labels: Mapping[str, str], values: Mapping[str, pulumi.Input[str]]
) -> Manifest:
    return Manifest(
        logical,
        "Secret",
        {"metadata": metadata(name, namespace, labels), "type": "Opaque", "string_data": secret_string_data(values)},
    )


def network_policy(logical: str, name: str, namespace: str, labels: Mapping[str, str], spec: Any) -> Manifest:
    return Manifest(logical, "NetworkPolicy", {"metadata": metadata(name, namespace, labels), "spec": spec})


def workload_kit(
    prefix: str,
    identity: WorkloadIdentity,
    ports: Mapping[str, int],
    policy: Mapping[str, Any] | None,
    *,
    env: Mapping[str, str] | None = None,
    secret_values: Mapping[str, pulumi.Input[str]] | None = None,
    headless: bool = False,
) -> list[Manifest]:
    """The objects every workload gets, named `<prefix>-<role>`: its ServiceAccount, the ConfigMap of
    its non-secret env (`env` given), the Secret of its secret env (`secret_values` given), a
    ClusterIP Service (and a headless one for a StatefulSet's pod names), and its NetworkPolicy."""
    ns, labels = identity.namespace, identity.labels
    kit = [service_account(f"{prefix}-serviceaccount", identity.service_account_name, ns, labels)]
    if env is not None:
        kit.append(config_map(f"{prefix}-env", identity.config_map_name, ns, labels, dict(sorted(env.items()))))
    if secret_values is not None:
        assert identity.secret_name is not None
        kit.append(secret(f"{prefix}-secrets", identity.secret_name, ns, labels, dict(sorted(secret_values.items()))))
    kit.append(
        Manifest(
            f"{prefix}-service",
            "Service",
            {"metadata": metadata(identity.name, ns, labels), "spec": service_spec(identity.selector, ports)},
        )
    )
    if headless:
        kit.append(
            Manifest(
                f"{prefix}-headless",
                "Service",
                {
                    "metadata": metadata(f"{identity.name}-headless", ns, labels),
                    "spec": service_spec(identity.selector, ports, headless=True),
                },
            )
        )
    if policy is not None:
        kit.append(network_policy(f"{prefix}-networkpolicy", identity.name, ns, labels, dict(policy)))
    return kit
