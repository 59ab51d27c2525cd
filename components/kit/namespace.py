"""A namespace the platform owns: Pod Security Standards enforced, traffic denied unless allowed.
Each tier that has a namespace of its own creates it with this one component."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi

from components.kit import network
from components.kit.context import TierContext
from components.kit.objects import Manifest, network_policy, register
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


def namespace_manifests(logical: str, name: str, component: str, ctx: TierContext, holds_data: bool) -> list[Manifest]:
    labels = namespace_labels(name, ctx.instance, component, ctx.version, holds_data)
    policy_labels = standard_labels("network-policy", ctx.instance, "network", ctx.version)
    namespace = f"{logical}-namespace"
    dns = network.dns_egress_spec(ctx.network)
    return [
        # Stateful: deleting the namespace would delete every claim in it.
        Manifest(namespace, "Namespace", {"metadata": {"name": name, "labels": labels}}, stateful=True),
        replace(
            network_policy(f"{logical}-default-deny", "default-deny", name, policy_labels, network.default_deny_spec()),
            after=(namespace,),
        ),
        replace(
            network_policy(f"{logical}-allow-dns", "allow-dns", name, policy_labels, dns),
            after=(namespace,),
        ),
    ]


@dataclass(frozen=True)
class PlatformNamespaceArgs:
    name: str
    component: str
    # ctx.protect: protect + retain_on_delete on the namespace (production's data namespace).
    context: TierContext
    holds_data: bool = False


class PlatformNamespace(pulumi.ComponentResource):
    """Namespace + default-deny NetworkPolicy + DNS egress for every pod in it."""

    name: pulumi.Output[str]
    namespace: pulumi.Resource

    def __init__(self, name: str, args: PlatformNamespaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:platform:Namespace", name, None, opts)
        manifests = namespace_manifests(name, args.name, args.component, args.context, args.holds_data)
        # The tier's own prerequisites wait for this namespace, not the other way round.
        registered = register(manifests, self, replace(args.context, after=()))
        self.namespace = registered[f"{name}-namespace"]
        # Known before the namespace exists, but handed on only once it does.
        self.name = self.namespace.urn.apply(lambda _: args.name)
        self.register_outputs({"name": self.name})
