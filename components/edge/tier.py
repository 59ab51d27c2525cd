"""The Edge component: registers what components/edge/manifests.py describes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from components.config import EdgeSettings
from components.contracts import Backend
from components.edge.manifests import edge_manifests
from components.kit.context import TierContext
from components.kit.objects import CUSTOM_RESOURCE, Manifest, register


@dataclass(frozen=True)
class EdgeArgs:
    settings: EdgeSettings
    namespace: str
    # Instance and version; `after`: the namespace (and services) routes point into.
    context: TierContext
    backends: Mapping[str, Backend]


class Edge(pulumi.ComponentResource):
    """The public entry: routes or an Ingress, TLS, limits, as `edge_manifests` describes them."""

    hosts: list[str]

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:edge:Edge", name, None, opts)
        ctx = args.context
        described = edge_manifests(args.settings, args.namespace, ctx.instance, ctx.version, args.backends)
        manifests = []
        for logical, manifest in described.items():
            if manifest["kind"] == "Ingress":
                fields = {"metadata": manifest["metadata"], "spec": manifest["spec"]}
                manifests.append(Manifest(logical, "Ingress", fields))
            else:
                fields = {
                    "api_version": manifest["apiVersion"],
                    "kind": manifest["kind"],
                    "metadata": manifest["metadata"],
                    "spec": manifest["spec"],
                }
                manifests.append(Manifest(logical, CUSTOM_RESOURCE, fields))
        register(manifests, self, ctx)
        self.hosts = list(args.settings.hosts)
        self.register_outputs({"hosts": self.hosts})
