"""Steps of `pulumi preview --json` / `pulumi refresh --preview-only --json`, shaped like the CLI's.

Field names are those of CLI v3.259.0's `display.previewStep` (op, urn, oldState, newState,
replaceReasons, detailedDiff of {kind, inputDiff}) with `apitype.ResourceV3` states (type, inputs,
outputs, protect), as observed on real previews and refreshes of this project's stacks.
"""

from __future__ import annotations

from typing import Any

PARENT = "support:platform:Platform$support:app:AppTier"


def urn(resource_type: str, name: str, stack: str = "production") -> str:
    return f"urn:pulumi:{stack}::support-platform::{PARENT}${resource_type}::{name}"


def step(
    op: str,
    resource_type: str,
    name: str,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A step; `old`/`new` are inputs (outputs mirror them unless given in extra)."""
    known = ("kubernetes:", "pulumi:", "random:")
    full_type = resource_type if resource_type.startswith(known) else f"kubernetes:{resource_type}"
    raw: dict[str, Any] = {"op": op, "urn": urn(full_type, name)}
    if old is not None:
        raw["oldState"] = {"type": full_type, "urn": raw["urn"], "custom": True, "inputs": old, "outputs": old}
        raw["oldState"].update(extra.pop("old_state", {}))
    if new is not None:
        raw["newState"] = {"type": full_type, "urn": raw["urn"], "custom": True, "inputs": new, "outputs": new}
        raw["newState"].update(extra.pop("new_state", {}))
    raw.update(extra)
    return raw


def container(name: str, requests: dict[str, str] | None, limits: dict[str, str] | None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": name, "image": f"example/{name}:1", "resources": resources}


def meta(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": name}}


def deployment(name: str, namespace: str, *containers: dict[str, Any], replicas: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": {"containers": list(containers)}}}
    if replicas is not None:
        spec["replicas"] = float(replicas)  # the engine's JSON numbers
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name, namespace), "spec": spec}


def statefulset(name: str, namespace: str, replicas: int, storage: str, *containers: dict[str, Any]) -> dict[str, Any]:
    claim = {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": storage}}}}
    spec = {
        "replicas": replicas,
        "template": {"spec": {"containers": list(containers)}},
        "volumeClaimTemplates": [claim],
    }
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta(name, namespace), "spec": spec}


def hpa(name: str, namespace: str, low: int, high: int, kind: str = "Deployment") -> dict[str, Any]:
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": name}, "minReplicas": low}
    spec["maxReplicas"] = high
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(name, namespace),
        "spec": spec,
    }


def job_spec(*containers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"template": {"spec": {"containers": list(containers), "restartPolicy": "Never"}}, **fields}


def job(name: str, namespace: str, *containers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(name, namespace),
        "spec": job_spec(*containers, **fields),
    }


def cronjob(name: str, namespace: str, schedule: str, job_template: dict[str, Any], **fields: Any) -> dict[str, Any]:
    spec = {"schedule": schedule, "jobTemplate": {"spec": job_template}, **fields}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta(name, namespace), "spec": spec}


def claim(name: str, namespace: str, storage: str) -> dict[str, Any]:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(name, namespace), "spec": spec}
