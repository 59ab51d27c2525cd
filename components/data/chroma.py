"""Chroma: the vector store's server as a hardened StatefulSet, with CSI snapshots when configured.

Chroma 1.x servers have no built-in authentication. What guards the store is the NetworkPolicy:
exactly the declared clients reach port 8000, nothing else in the cluster does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import workload
from components.config import ChromaSettings
from components.config.data import SnapshotSettings
from components.data import store
from components.data.store import StoreContext
from components.labels import NEEDS_KUBERNETES_API, selector_labels
from components.network import DataEndpoint

PORT = 8000
DATA_PATH = "/data"
CONFIG_PATH = "/etc/chroma"
HEARTBEAT = "/api/v2/heartbeat"
# 503 while the server is unhealthy (e.g. its SQLite unavailable); heartbeat only says it answers.
HEALTHCHECK = "/api/v2/healthcheck"
CLAIM = "data-chroma-0"
SNAPSHOT_NAME = "chroma-snapshot"
SNAPSHOT_SCRIPT = (Path(__file__).parent / "files" / "chroma-snapshot.sh").read_text()
SCRIPTS_PATH = "/opt/support-platform"
SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
# What the script does with VolumeSnapshots in its namespace, and nothing more.
SNAPSHOT_VERBS = ("create", "delete", "get", "list")


@dataclass(frozen=True)
class ChromaArgs:
    settings: ChromaSettings
    context: StoreContext
    # Where the Kubernetes API server lies: the snapshot pods' only egress.
    api_server_cidr: str = "0.0.0.0/0"


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
        child = ctx.options(self)
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
            opts=ctx.stateful_options(self, config_map),
        )
        if s.snapshots.volume_snapshot_class is not None:
            self._snapshots(name, s.snapshots, ctx, ident, args.api_server_cidr, child)
        self.endpoint = DataEndpoint(
            name="chroma", host=host, port=PORT, namespace=ns, cidr=None, pod_selector=ident.selector
        )
        self.register_outputs({"host": host, "port": PORT})

    def _snapshots(
        self,
        name: str,
        s: SnapshotSettings,
        ctx: StoreContext,
        ident: workload.WorkloadIdentity,
        api_server_cidr: str,
        child: pulumi.ResourceOptions,
    ) -> None:
        """snapshots.volumeSnapshotClass: a CronJob whose script snapshots the claim and prunes old
        snapshots, with the one token in the tier (a Role on volumesnapshots here, nothing else)."""
        ns = ctx.namespace
        selector = selector_labels(SNAPSHOT_NAME, ctx.instance)
        labels = {**ident.labels, **selector, "app.kubernetes.io/component": "snapshot"}
        metadata = workload.metadata(SNAPSHOT_NAME, ns, labels)
        script = k8s.core.v1.ConfigMap(
            f"{name}-snapshot-script",
            metadata=workload.metadata(f"{SNAPSHOT_NAME}-script", ns, labels),
            data={"chroma-snapshot.sh": SNAPSHOT_SCRIPT},
            opts=child,
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-snapshot-serviceaccount",
            metadata={**metadata, "annotations": {NEEDS_KUBERNETES_API: snapshot_api_use()}},
            automount_service_account_token=True,
            opts=child,
        )
        role = k8s.rbac.v1.Role(
            f"{name}-snapshot-role",
            metadata=metadata,
            rules=snapshot_role_rules(),
            opts=child,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-snapshot-rolebinding",
            metadata=metadata,
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": SNAPSHOT_NAME},
            subjects=[{"kind": "ServiceAccount", "name": SNAPSHOT_NAME, "namespace": ns}],
            opts=ctx.options(self, role, account),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-snapshot-networkpolicy",
            metadata=metadata,
            spec=snapshot_policy_spec(selector, api_server_cidr),
            opts=child,
        )
        k8s.batch.v1.CronJob(
            f"{name}-snapshot-cronjob",
            metadata={**metadata, "annotations": {NEEDS_KUBERNETES_API: snapshot_api_use()}},
            spec=store.cronjob_spec(
                s.schedule,
                s.time_zone,
                labels,
                snapshot_pod_spec(s, ctx.priority_class),
                # A retry takes a new snapshot: once is enough, the next night tries again.
                backoff_limit=1,
                deadline_seconds=s.wait_seconds + 300,
                pod_annotations={NEEDS_KUBERNETES_API: snapshot_api_use()},
            ),
            opts=ctx.options(self, script),
        )


def snapshot_api_use() -> str:
    return f"creates, lists and deletes the VolumeSnapshots of {CLAIM} in its namespace"


def snapshot_role_rules() -> list[dict[str, Any]]:
    return [{"api_groups": [SNAPSHOT_GROUP], "resources": ["volumesnapshots"], "verbs": list(SNAPSHOT_VERBS)}]


def snapshot_policy_spec(selector: dict[str, str], api_server_cidr: str) -> dict[str, Any]:
    """Snapshot pods take no traffic and reach the API server only (DNS is the namespace policy's)."""
    return {
        "pod_selector": {"match_labels": dict(selector)},
        "policy_types": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [
            {
                "to": [{"ip_block": {"cidr": api_server_cidr}}],
                "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}],
            }
        ],
    }


def snapshot_env(s: SnapshotSettings) -> list[dict[str, Any]]:
    """What chroma-snapshot.sh reads (see its header)."""
    assert s.volume_snapshot_class is not None
    return [
        {"name": "NAMESPACE", "value_from": {"field_ref": {"field_path": "metadata.namespace"}}},
        {"name": "CLAIM", "value": CLAIM},
        {"name": "CLASS", "value": s.volume_snapshot_class},
        {"name": "KEEP", "value": str(s.keep)},
        {"name": "WAIT_SECONDS", "value": str(s.wait_seconds)},
        # kubectl keeps its discovery cache under $HOME; the root filesystem is read-only.
        {"name": "HOME", "value": "/tmp"},
    ]


def snapshot_pod_spec(s: SnapshotSettings, priority_class: str) -> dict[str, Any]:
    """The pod of a snapshot run: kubectl with a shell, the script from a ConfigMap, the token of
    its own ServiceAccount; restricted like every pod."""
    return {
        "service_account_name": SNAPSHOT_NAME,
        "automount_service_account_token": True,  # it calls the API (see NEEDS_KUBERNETES_API)
        "enable_service_links": False,
        "restart_policy": "Never",
        "priority_class_name": priority_class,
        "security_context": workload.pod_security_context(store.RUN_AS_USER),
        "containers": [
            {
                "name": "snapshot",
                "image": s.image,
                "image_pull_policy": "IfNotPresent",
                "command": ["/bin/sh", f"{SCRIPTS_PATH}/chroma-snapshot.sh"],
                "env": snapshot_env(s),
                "resources": {
                    "requests": {"cpu": "50m", "memory": "64Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "security_context": workload.container_security_context(store.RUN_AS_USER),
                "volume_mounts": [
                    {"name": "scripts", "mount_path": SCRIPTS_PATH, "read_only": True},
                    {"name": "tmp", "mount_path": "/tmp"},
                ],
                "termination_message_policy": "FallbackToLogsOnError",
            }
        ],
        "volumes": [
            {"name": "scripts", "config_map": {"name": f"{SNAPSHOT_NAME}-script", "default_mode": 0o555}},
            {"name": "tmp", "empty_dir": {}},
        ],
    }
