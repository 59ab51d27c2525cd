"""Chroma: the vector store's server as a hardened StatefulSet, with CSI snapshots when configured.

Chroma 1.x servers have no built-in authentication. What guards the store is the NetworkPolicy:
exactly the declared clients reach port 8000, nothing else in the cluster does.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import workload
from components.config import ChromaSettings
from components.data import store
from components.data.store import StoreContext
from components.network import DataEndpoint

PORT = 8000
DATA_PATH = "/data"
CONFIG_PATH = "/etc/chroma"
HEARTBEAT = "/api/v2/heartbeat"
# 503 while the server is unhealthy (e.g. its SQLite unavailable); heartbeat only says it answers.
HEALTHCHECK = "/api/v2/healthcheck"


@dataclass(frozen=True)
class ChromaArgs:
    settings: ChromaSettings
    context: StoreContext


def chroma_config() -> dict[str, object]:
    """The server's configuration file: listen on every address, keep everything under the claim,
    and never allow the reset endpoint (it deletes every collection)."""
    return {
        "port": PORT,
        "listen_address": "0.0.0.0",  # noqa: S104 (the pod's address; NetworkPolicy admits the clients)
        "persist_path": DATA_PATH,
        "allow_reset": False,
    }


class Chroma(pulumi.ComponentResource):
    endpoint: DataEndpoint

    def __init__(self, name: str, args: ChromaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:data:Chroma", name, None, opts)
        s, ctx = args.settings, args.context
        ns = ctx.namespace
        child = pulumi.ResourceOptions(parent=self, depends_on=list(ctx.depends_on))
        stateful = pulumi.ResourceOptions(
            parent=self, depends_on=list(ctx.depends_on), protect=ctx.protect, retain_on_delete=ctx.protect
        )
        svc = store.store_service("vector-store", s.image, {"http": PORT}, s.resources, ["/tmp"], 60)
        ident = store.identity("chroma", ctx, svc)
        host = f"chroma.{ns}.svc.cluster.local"
        config = yaml.safe_dump(chroma_config(), sort_keys=True)
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=workload.metadata("chroma-config", ns, ident.labels),
            data={"config.yaml": config},
            opts=child,
        )
        store.register_kit(name, ident, dict(svc.ports), ctx.clients, ctx, False, child)
        spec = store.statefulset_spec(
            ident, svc, store.digest({"config": config}), [store.claim_template("data", s.storage)], ctx
        )
        pod = spec["template"]["spec"]
        main = pod["containers"][0]
        main["args"] = ["run", f"{CONFIG_PATH}/config.yaml"]
        # Loading large indexes can take minutes: the startup probe allows settings' startupSeconds.
        main["startup_probe"] = store.http_probe(HEARTBEAT, "http", 10, max(3, s.startup_seconds // 10))
        main["readiness_probe"] = store.http_probe(HEALTHCHECK, "http", 10, 3)
        main["liveness_probe"] = store.http_probe(HEARTBEAT, "http", 20, 6, timeout=10)
        store.mount(pod, "data", DATA_PATH, None)
        store.mount(pod, "config", CONFIG_PATH, {"config_map": {"name": "chroma-config"}})
        k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=workload.metadata("chroma", ns, ident.labels),
            spec=spec,
            opts=pulumi.ResourceOptions.merge(stateful, pulumi.ResourceOptions(depends_on=[config_map])),
        )
        self.endpoint = DataEndpoint(
            name="chroma", host=host, port=PORT, namespace=ns, cidr=None, pod_selector=ident.selector
        )
        self.register_outputs({"host": host, "port": PORT})
