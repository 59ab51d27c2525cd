"""Every place a pod template lives, every container in it, and its effective security context.

"Pod spec" means Pod `spec`, `spec.template.spec` of Deployment, StatefulSet, DaemonSet, ReplicaSet
and Job, and `spec.jobTemplate.spec.template.spec` of CronJob. "Container" means every entry of
`containers`, `initContainers` and `ephemeralContainers`. A pod-level `securityContext` field
satisfies the container-level check it covers, where the field exists at pod level.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .k8s import as_mapping, as_sequence, as_str, get_path, k8s_kind

# Where the pod template (metadata + spec) sits inside each workload kind.
_TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")

# securityContext fields that PodSecurityContext also has; the container value wins when set.
POD_LEVEL_SECURITY_FIELDS = frozenset(
    {
        "runAsNonRoot",
        "runAsUser",
        "runAsGroup",
        "seccompProfile",
        "seLinuxOptions",
        "windowsOptions",
        "appArmorProfile",
    }
)

RUN_TO_COMPLETION_KINDS = frozenset({"Job", "CronJob"})


@dataclass(frozen=True)
class PodTemplate:
    kind: str
    path: str  # dotted path of the pod spec, e.g. "spec.template.spec"
    spec: Mapping[str, Any]
    metadata: Mapping[str, Any]  # the pod's own metadata (template metadata for controllers)
    metadata_path: str

    @property
    def security_context(self) -> Mapping[str, Any]:
        return as_mapping(self.spec.get("securityContext"))

    @property
    def labels(self) -> Mapping[str, Any]:
        return as_mapping(self.metadata.get("labels"))

    @property
    def annotations(self) -> Mapping[str, Any]:
        return as_mapping(self.metadata.get("annotations"))

    @property
    def long_running(self) -> bool:
        """Pods expected to keep serving: not Jobs, CronJobs or run-to-completion bare Pods."""
        if self.kind in RUN_TO_COMPLETION_KINDS:
            return False
        return as_str(self.spec.get("restartPolicy")) in (None, "Always")


def pod_template(resource_type: str, props: Mapping[str, Any]) -> PodTemplate | None:
    kind = k8s_kind(resource_type)
    if kind == "Pod":
        return PodTemplate(
            kind,
            "spec",
            as_mapping(props.get("spec")),
            as_mapping(props.get("metadata")),
            "metadata",
        )
    if kind is None or kind not in _TEMPLATE_PATHS:
        return None
    keys = _TEMPLATE_PATHS[kind]
    template = as_mapping(get_path(props, *keys))
    base = ".".join(keys)
    return PodTemplate(
        kind,
        f"{base}.spec",
        as_mapping(template.get("spec")),
        as_mapping(template.get("metadata")),
        f"{base}.metadata",
    )


@dataclass(frozen=True)
class Container:
    pod: PodTemplate
    list_name: str
    index: int
    spec: Mapping[str, Any]

    @property
    def name(self) -> str:
        return as_str(self.spec.get("name")) or str(self.index)

    @property
    def path(self) -> str:
        return f"{self.pod.path}.{self.list_name}[{self.name}]"

    @property
    def security_context(self) -> Mapping[str, Any]:
        return as_mapping(self.spec.get("securityContext"))

    @property
    def is_sidecar(self) -> bool:
        """A native sidecar: an init container that keeps running beside the app containers."""
        return self.list_name == "initContainers" and as_str(self.spec.get("restartPolicy")) == "Always"

    @property
    def long_running(self) -> bool:
        if not self.pod.long_running:
            return False
        return self.list_name == "containers" or self.is_sidecar


def containers(pod: PodTemplate, lists: tuple[str, ...] = CONTAINER_LISTS) -> Iterator[Container]:
    for list_name in lists:
        for index, entry in enumerate(as_sequence(pod.spec.get(list_name))):
            yield Container(pod, list_name, index, as_mapping(entry))


def workload_containers(
    resource_type: str, props: Mapping[str, Any], lists: tuple[str, ...] = CONTAINER_LISTS
) -> Iterator[Container]:
    pod = pod_template(resource_type, props)
    if pod is not None:
        yield from containers(pod, lists)


@dataclass(frozen=True)
class Effective:
    """The value that applies to a container and the path it came from (or should be set at)."""

    value: Any
    path: str
    from_pod: bool


def effective_security(container: Container, field: str) -> Effective:
    own = container.security_context.get(field)
    own_path = f"{container.path}.securityContext.{field}"
    if own is not None:
        return Effective(own, own_path, False)
    if field in POD_LEVEL_SECURITY_FIELDS:
        pod_value = container.pod.security_context.get(field)
        if pod_value is not None:
            return Effective(pod_value, f"{container.pod.path}.securityContext.{field}", True)
    return Effective(None, own_path, False)


def security_contexts(pod: PodTemplate) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every explicitly written securityContext, pod level first, with its path."""
    yield f"{pod.path}.securityContext", pod.security_context
    for container in containers(pod):
        yield f"{container.path}.securityContext", container.security_context
