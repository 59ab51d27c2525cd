"""Builders for compliant Kubernetes objects and helpers that call one policy with the SDK's types.

Every builder returns an object that passes every rule, in the program's conventions (restricted
pod, high UID, own ServiceAccount, recommended labels, explicit namespace). Tests copy one and
break exactly the field a rule looks at.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

STACK = "dev"
PROJECT = "support-platform"
NAMESPACE = "support"
EXPLICIT_PROVIDER_URN = f"urn:pulumi:{STACK}::{PROJECT}::pulumi:providers:kubernetes::k8s-provider"
DEFAULT_PROVIDER_URN = f"urn:pulumi:{STACK}::{PROJECT}::pulumi:providers:kubernetes::default_4_25_0"
DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGE = f"registry.example.com/support/api:1.4.2@{DIGEST}"
UID = 10001

TYPES = {
    "Pod": "kubernetes:core/v1:Pod",
    "Deployment": "kubernetes:apps/v1:Deployment",
    "StatefulSet": "kubernetes:apps/v1:StatefulSet",
    "DaemonSet": "kubernetes:apps/v1:DaemonSet",
    "ReplicaSet": "kubernetes:apps/v1:ReplicaSet",
    "Job": "kubernetes:batch/v1:Job",
    "CronJob": "kubernetes:batch/v1:CronJob",
    "Namespace": "kubernetes:core/v1:Namespace",
    "Service": "kubernetes:core/v1:Service",
    "ServiceAccount": "kubernetes:core/v1:ServiceAccount",
    "ConfigMap": "kubernetes:core/v1:ConfigMap",
    "PersistentVolumeClaim": "kubernetes:core/v1:PersistentVolumeClaim",
    "NetworkPolicy": "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    "Ingress": "kubernetes:networking.k8s.io/v1:Ingress",
    "PodDisruptionBudget": "kubernetes:policy/v1:PodDisruptionBudget",
    "HorizontalPodAutoscaler": "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    "Gateway": "kubernetes:gateway.networking.k8s.io/v1:Gateway",
    "HTTPRoute": "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
}
WORKLOAD_KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
CONTROLLER_KINDS = tuple(k for k in WORKLOAD_KINDS if k != "Pod")
REPLICATED_KINDS = ("Deployment", "StatefulSet", "ReplicaSet")
LONG_RUNNING_KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
POD_SPEC_PATHS = {
    "Pod": "spec",
    "Deployment": "spec.template.spec",
    "StatefulSet": "spec.template.spec",
    "DaemonSet": "spec.template.spec",
    "ReplicaSet": "spec.template.spec",
    "Job": "spec.template.spec",
    "CronJob": "spec.jobTemplate.spec.template.spec",
}


def pod_metadata_path(kind: str) -> str:
    return "metadata" if kind == "Pod" else POD_SPEC_PATHS[kind].removesuffix(".spec") + ".metadata"


# --- builders -------------------------------------------------------------------------------


def labels(name: str = "api", component: str = "backend") -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": f"{name}-dev",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "support-platform",
        "app.kubernetes.io/version": "1.4.2",
        "app.kubernetes.io/managed-by": "pulumi",
    }


def selector(name: str = "api") -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": f"{name}-dev"}


def metadata(name: str = "api", namespace: str | None = NAMESPACE, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels(name), **extra}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container(name: str = "api", list_name: str = "containers", **extra: Any) -> dict[str, Any]:
    """A compliant entry for `list_name`: app containers get probes, ephemeral ones no resources."""
    entry: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "securityContext": container_security_context(),
    }
    if list_name != "ephemeralContainers":
        entry["resources"] = {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        }
    if list_name == "containers":
        entry["ports"] = [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
        entry["startupProbe"] = {"httpGet": {"path": "/health/startup", "port": "http"}}
        entry["readinessProbe"] = {"httpGet": {"path": "/health/readiness", "port": "http"}}
        entry["livenessProbe"] = {"httpGet": {"path": "/health/liveness", "port": "http"}}
    entry.update(extra)
    return entry


def pod_spec(kind: str = "Deployment", name: str = "api") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container(name)],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector(name)},
            }
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
        ],
    }
    if kind in ("Job", "CronJob"):
        spec["restartPolicy"] = "Never"
    return spec


def workload(
    kind: str,
    spec: Mapping[str, Any] | None = None,
    *,
    name: str = "api",
    namespace: str | None = NAMESPACE,
    replicas: int | None = None,
    template_labels: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """(resource type, props) of a compliant workload of `kind` around `spec`."""
    pod = dict(spec) if spec is not None else pod_spec(kind, name)
    meta = metadata(name, namespace)
    pod_labels = dict(template_labels) if template_labels is not None else labels(name)
    if kind == "Pod":
        meta["labels"] = pod_labels
        return TYPES[kind], {"apiVersion": "v1", "kind": kind, "metadata": meta, "spec": pod}
    template = {"metadata": {"labels": pod_labels}, "spec": pod}
    body: dict[str, Any]
    if kind == "CronJob":
        body = {"schedule": "*/15 * * * *", "jobTemplate": {"spec": {"template": template}}}
    elif kind == "Job":
        body = {"template": template}
    else:
        body = {"selector": {"matchLabels": selector(name)}, "template": template}
        if replicas is not None:
            body["replicas"] = replicas
    api_version = TYPES[kind].split(":")[1].removeprefix("core/")
    return TYPES[kind], {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": body}


def with_container(kind: str, list_name: str, entry: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A compliant workload whose `list_name` also holds `entry`."""
    spec = pod_spec(kind)
    spec.setdefault(list_name, []).append(dict(entry))
    return workload(kind, spec)


def pod_spec_of(kind: str, props: dict[str, Any]) -> dict[str, Any]:
    node: Any = props
    for key in POD_SPEC_PATHS[kind].split("."):
        node = node[key]
    assert isinstance(node, dict)
    return node


def pod_metadata_of(kind: str, props: dict[str, Any]) -> dict[str, Any]:
    node: Any = props
    for key in pod_metadata_path(kind).split("."):
        node = node[key]
    assert isinstance(node, dict)
    return node


def simple(
    kind: str, name: str = "api", namespace: str | None = NAMESPACE, **fields: Any
) -> tuple[str, dict[str, Any]]:
    api_version = TYPES[kind].split(":")[1].removeprefix("core/")
    return TYPES[kind], {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata(name, namespace),
        **fields,
    }


def deep(props: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(props))


# --- calling policies as the engine does ----------------------------------------------------


def engine_view(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """Props as the analyzer hands them to a policy: via protobuf (floats) into read-only proxies."""
    struct = struct_pb2.Struct()
    struct.update(copy.deepcopy(dict(props)))
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def engine_config(config: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not config:
        return {}
    struct = struct_pb2.Struct()
    struct.update(dict(config))
    plain: dict[str, Any] = json_format.MessageToDict(struct)
    return plain


def urn(resource_type: str, name: str) -> str:
    return f"urn:pulumi:{STACK}::{PROJECT}::{resource_type}::{name}"


def options(protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def provider(provider_urn: str | None = EXPLICIT_PROVIDER_URN) -> PolicyProviderResource | None:
    if provider_urn is None:
        return None
    return PolicyProviderResource("pulumi:providers:kubernetes", {}, provider_urn, provider_urn.rsplit("::", 1)[-1])


def check_resource(
    policy: ResourceValidationPolicy,
    resource_type: str,
    props: Mapping[str, Any],
    *,
    name: str = "api",
    config: Mapping[str, Any] | None = None,
    protect: bool = False,
    provider_urn: str | None = EXPLICIT_PROVIDER_URN,
) -> list[str]:
    """The messages `policy` reports for one resource."""
    args = ResourceValidationArgs(
        resource_type,
        engine_view(props),
        urn(resource_type, name),
        name,
        options(protect),
        provider(provider_urn),
        engine_config(config),
    )
    messages: list[str] = []

    def report(message: str, _urn: str | None = None) -> None:
        messages.append(message)

    policy.validate(args, report)
    return messages


def resource(
    resource_type: str,
    props: Mapping[str, Any],
    name: str,
    *,
    protect: bool = False,
    raw: bool = False,
) -> PolicyResource:
    view = props if raw else engine_view(props)
    return PolicyResource(
        resource_type, view, urn(resource_type, name), name, options(protect), provider(), None, [], {}
    )


def check_stack(
    policy: StackValidationPolicy,
    resources: Sequence[PolicyResource],
    config: Mapping[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """(resource name, message) for every violation `policy` reports on the stack."""
    reported: list[tuple[str, str]] = []

    def report(message: str, urn_: str | None = None) -> None:
        reported.append(((urn_ or "").rsplit("::", 1)[-1], message))

    policy.validate(StackValidationArgs(list(resources), engine_config(config)), report)
    return reported


def assert_finding(messages: Sequence[str], *, subject: str, path: str, found: str | None = None, fix: str = "") -> str:
    """Exactly one message names `subject` and `path` (and shows `found` and `fix`)."""
    hits = [m for m in messages if f"{path} is " in m]
    assert len(hits) == 1, f"expected one finding at {path}, got:\n" + "\n".join(messages)
    message = hits[0]
    assert message.startswith(subject + ":"), message
    if found is not None:
        assert f"{path} is {found};" in message, message
    assert "Fix: " in message and fix in message.split("Fix: ", 1)[1], message
    return message


def subject_label(kind: str, name: str = "api") -> str:
    return f'{TYPES[kind]} "{name}"'
