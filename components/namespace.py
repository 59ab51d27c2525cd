"""A namespace the platform owns: Pod Security Standards enforced, traffic denied unless allowed."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import network
from components.config import NetworkSettings
from components.labels import DATA_NAMESPACE_LABEL, standard_labels

PSS_LEVEL = "restricted"
PSS_VERSION = "latest"


def namespace_labels(name: str, instance: str, component: str, version: str, data: bool) -> dict[str, str]:
    labels = {
        **standard_labels(name, instance, component, version),
        # enforce rejects non-conforming pods; audit and warn surface them in logs and to kubectl users.
        "pod-security.kubernetes.io/enforce": PSS_LEVEL,
        "pod-security.kubernetes.io/enforce-version": PSS_VERSION,
        "pod-security.kubernetes.io/audit": PSS_LEVEL,
        "pod-security.kubernetes.io/audit-version": PSS_VERSION,
        "pod-security.kubernetes.io/warn": PSS_LEVEL,
        "pod-security.kubernetes.io/warn-version": PSS_VERSION,
    }
    if data:
        labels[DATA_NAMESPACE_LABEL] = "true"
    return labels


@dataclass(frozen=True)
class PlatformNamespaceArgs:
    name: str
    instance: str
    component: str
    version: str
    network: NetworkSettings
    holds_data: bool = False
    # protect + retain_on_delete: deleting the namespace would delete every claim in it.
    protect: bool = False


class PlatformNamespace(pulumi.ComponentResource):
    """Namespace + default-deny NetworkPolicy + DNS egress for every pod in it."""

    name: pulumi.Output[str]
    namespace: k8s.core.v1.Namespace

    def __init__(self, name: str, args: PlatformNamespaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:platform:Namespace", name, None, opts)
        labels = namespace_labels(args.name, args.instance, args.component, args.version, args.holds_data)
        self.namespace = namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": args.name, "labels": labels},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect),
        )
        after_namespace = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        policy_labels = standard_labels("network-policy", args.instance, "network", args.version)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata={"name": "default-deny", "namespace": args.name, "labels": policy_labels},
            spec=network.default_deny_spec(),
            opts=after_namespace,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-dns",
            metadata={"name": "allow-dns", "namespace": args.name, "labels": policy_labels},
            spec=network.dns_egress_spec(args.network),
            opts=after_namespace,
        )
        self.name = namespace.metadata.apply(lambda _: args.name)
        self.register_outputs({"name": self.name})
