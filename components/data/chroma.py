"""Chroma: the vector store's server as a hardened StatefulSet, with CSI snapshots when configured.

Chroma 1.x servers have no built-in authentication. What guards the store is the NetworkPolicy:
exactly the declared clients reach port 8000, nothing else in the cluster does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

from components.config import ChromaSettings, SnapshotSettings
from components.contracts import DataEndpoint
from components.data.store_workload import (
    RUN_AS_USER,
    StoreContext,
    cronjob_spec,
    store_kit,
    store_statefulset_spec,
    store_workload,
)
from components.kit import workload
from components.kit.network import api_server_policy_spec
from components.kit.objects import Manifest, config_map, digest, network_policy, register
from components.kit.workload import http_probe, mount
from components.labels import NEEDS_KUBERNETES_API, selector_labels

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
        host = f"chroma.{ns}.svc.cluster.local"
        spec = store_workload(
            "chroma",
            ctx,
            "vector-store",
            s.image,
            {"http": PORT},
            s.resources,
            {
                # Loading large indexes can take minutes: the startup probe allows settings' startupSeconds.
                "startup": http_probe(HEARTBEAT, "http", 10, max(3, s.startup_seconds // 10)),
                "readiness": http_probe(HEALTHCHECK, "http", 10, 3),
                "liveness": http_probe(HEARTBEAT, "http", 20, 6, timeout=10),
            },
            writable_paths=["/tmp"],
            grace_seconds=60,
            args=["run", f"{CONFIG_PATH}/config.yaml"],
            # Chroma stops on its own signal handling; no load balancer needs time to forget it.
            lifecycle=workload.pre_stop_sleep(1),
        )
        labels = spec.identity.labels
        config = yaml.safe_dump(chroma_config(), sort_keys=True)
        statefulset = store_statefulset_spec(spec, digest({"config": config}), s.storage, ctx)
        pod = statefulset["template"]["spec"]
        mount(pod, "data", DATA_PATH, None)
        mount(pod, "config", CONFIG_PATH, {"config_map": {"name": "chroma-config"}})
        manifests = [
            config_map(f"{name}-config", "chroma-config", ns, labels, {"config.yaml": config}),
            *store_kit(name, spec, ctx.clients, ctx),
            Manifest(
                f"{name}-statefulset",
                "StatefulSet",
                {"metadata": workload.metadata("chroma", ns, labels), "spec": statefulset},
                stateful=True,
                after=(f"{name}-config",),
            ),
        ]
        if s.snapshots.volume_snapshot_class is not None:
            manifests += snapshot_manifests(name, s.snapshots, ctx, labels, args.api_server_cidr)
        register(manifests, self, ctx.tier)
        self.endpoint = DataEndpoint(
            name="chroma", host=host, port=PORT, namespace=ns, cidr=None, pod_selector=spec.identity.selector
        )
        self.register_outputs({"host": host, "port": PORT})


def snapshot_manifests(
    name: str, s: SnapshotSettings, ctx: StoreContext, store_labels: dict[str, str], api_server_cidr: str
) -> list[Manifest]:
    """snapshots.volumeSnapshotClass: a CronJob whose script snapshots the claim and prunes old
    snapshots, with the one token in the tier (a Role on volumesnapshots here, nothing else)."""
    ns = ctx.namespace
    selector = selector_labels(SNAPSHOT_NAME, ctx.tier.instance)
    labels = {**store_labels, **selector, "app.kubernetes.io/component": "snapshot"}
    metadata = workload.metadata(SNAPSHOT_NAME, ns, labels)
    api_use = {NEEDS_KUBERNETES_API: snapshot_api_use()}
    script, account, role = f"{name}-snapshot-script", f"{name}-snapshot-serviceaccount", f"{name}-snapshot-role"
    return [
        config_map(script, f"{SNAPSHOT_NAME}-script", ns, labels, {"chroma-snapshot.sh": SNAPSHOT_SCRIPT}),
        Manifest(
            account,
            "ServiceAccount",
            {"metadata": {**metadata, "annotations": api_use}, "automount_service_account_token": True},
        ),
        Manifest(role, "Role", {"metadata": metadata, "rules": snapshot_role_rules()}),
        Manifest(
            f"{name}-snapshot-rolebinding",
            "RoleBinding",
            {
                "metadata": metadata,
                "role_ref": {"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": SNAPSHOT_NAME},
                "subjects": [{"kind": "ServiceAccount", "name": SNAPSHOT_NAME, "namespace": ns}],
            },
            after=(role, account),
        ),
        network_policy(
            f"{name}-snapshot-networkpolicy",
            SNAPSHOT_NAME,
            ns,
            labels,
            api_server_policy_spec(selector, api_server_cidr),
        ),
        Manifest(
            f"{name}-snapshot-cronjob",
            "CronJob",
            {
                "metadata": {**metadata, "annotations": api_use},
                "spec": cronjob_spec(
                    s.schedule,
                    s.time_zone,
                    labels,
                    snapshot_pod_spec(s, ctx.priority_class),
                    # A retry takes a new snapshot: once is enough, the next night tries again.
                    backoff_limit=1,
                    deadline_seconds=s.wait_seconds + 300,
                    pod_annotations=api_use,
                ),
            },
            after=(script,),
        ),
    ]


def snapshot_api_use() -> str:
    return f"creates, lists and deletes the VolumeSnapshots of {CLAIM} in its namespace"


def snapshot_role_rules() -> list[dict[str, Any]]:
    return [{"api_groups": [SNAPSHOT_GROUP], "resources": ["volumesnapshots"], "verbs": list(SNAPSHOT_VERBS)}]


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
    its own ServiceAccount (it calls the API, see NEEDS_KUBERNETES_API)."""
    container = {
        "name": "snapshot",
        "image": s.image,
        "image_pull_policy": "IfNotPresent",
        "command": ["/bin/sh", f"{SCRIPTS_PATH}/chroma-snapshot.sh"],
        "env": snapshot_env(s),
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "volume_mounts": [
            {"name": "scripts", "mount_path": SCRIPTS_PATH, "read_only": True},
            {"name": "tmp", "mount_path": "/tmp"},
        ],
        "termination_message_policy": "FallbackToLogsOnError",
    }
    volumes = [
        {"name": "scripts", "config_map": {"name": f"{SNAPSHOT_NAME}-script", "default_mode": 0o555}},
        {"name": "tmp", "empty_dir": {}},
    ]
    return workload.job_pod_spec(SNAPSHOT_NAME, container, RUN_AS_USER, volumes, priority_class, api_token=True)
