"""Workload hygiene: resources, probes, images, filesystem, identity, placement and API versions."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import ResourceValidationPolicy, Severity
from pulumi_policy.proxy import UnknownValueError

from .framework import (
    NEEDS_KUBERNETES_API_ANNOTATION,
    Finding,
    ResourceCheck,
    Setting,
    Settings,
    Subject,
    resource_policy,
)
from .k8s import (
    DEFAULT_NAMESPACE,
    K8S_PACKAGE,
    annotations_of,
    as_mapping,
    as_str,
    is_namespaced,
    labels_of,
    parse_quantity,
    parse_type,
    to_plain,
)
from .pod_specs import Container, PodTemplate, containers, pod_template

_TAGS = ("workload-hygiene",)


def _pod(subject: Subject) -> PodTemplate | None:
    return pod_template(subject.resource_type, subject.props)


# --- resources ------------------------------------------------------------------------------

REQUIRE_CPU_LIMIT = Setting(
    "requireCpuLimit",
    {
        "type": "boolean",
        "default": False,
        "description": (
            "Require limits.cpu. kube-score, Polaris and checkov require it; Kyverno's "
            "best-practices leave it out because CPU limits throttle even on an idle node."
        ),
    },
)


def check_resources(subject: Subject, settings: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    required = [("requests", "cpu"), ("requests", "memory"), ("limits", "memory")]
    if settings.flag(REQUIRE_CPU_LIMIT.key):
        required.append(("limits", "cpu"))
    # Ephemeral containers may not declare resources (the API rejects them), so they are exempt.
    for container in containers(pod, ("containers", "initContainers")):
        resources = as_mapping(container.spec.get("resources"))
        for section, resource in required:
            value = as_mapping(resources.get(section)).get(resource)
            quantity = parse_quantity(value)
            if quantity is None or quantity <= 0:
                yield Finding(
                    f"{container.path}.resources.{section}.{resource}",
                    value,
                    _resource_problem(section, resource),
                    f"set resources.{section}.{resource} to a positive quantity",
                )
        for resource in ("cpu", "memory"):
            request = parse_quantity(as_mapping(resources.get("requests")).get(resource))
            limit = parse_quantity(as_mapping(resources.get("limits")).get(resource))
            if request is not None and limit is not None and request > limit:
                yield Finding(
                    f"{container.path}.resources.requests.{resource}",
                    as_mapping(resources.get("requests")).get(resource),
                    f"the request is above the limit ({to_plain(as_mapping(resources.get('limits')).get(resource))})",
                    f"lower requests.{resource} to at most limits.{resource}",
                )


def _resource_problem(section: str, resource: str) -> str:
    if section == "requests":
        return f"without a {resource} request the scheduler cannot place the pod reliably"
    if resource == "memory":
        return "without a memory limit one container can exhaust the node's memory"
    return "this stack requires a CPU limit"


# --- probes ---------------------------------------------------------------------------------

_PROBE_ACTIONS = ("httpGet", "tcpSocket", "exec", "grpc")


def _probe_action(probe: Any) -> Any:
    probe_map = as_mapping(probe)
    return {action: to_plain(probe_map[action]) for action in _PROBE_ACTIONS if action in probe_map}


def check_probes(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None or not pod.long_running:
        return
    for container in containers(pod, ("containers", "initContainers")):
        if not container.long_running:
            continue
        yield from _container_probes(container)


def _container_probes(container: Container) -> Iterator[Finding]:
    readiness = container.spec.get("readinessProbe")
    liveness = container.spec.get("livenessProbe")
    if readiness is None:
        yield Finding(
            f"{container.path}.readinessProbe",
            None,
            "without a readiness probe traffic reaches the pod before it can serve",
            "add a readinessProbe that checks the container can serve requests",
        )
    if liveness is None:
        yield Finding(
            f"{container.path}.livenessProbe",
            None,
            "without a liveness probe a hung process is never restarted",
            "add a livenessProbe that checks only the process itself",
        )
    if readiness is not None and liveness is not None:
        action = _probe_action(liveness)
        if action and action == _probe_action(readiness):
            yield Finding(
                f"{container.path}.livenessProbe",
                action,
                "liveness is identical to readiness, so a failing dependency restarts the pod "
                "instead of only taking it out of rotation",
                "point the livenessProbe at a check of the process alone (a separate endpoint)",
            )


# --- images ---------------------------------------------------------------------------------

REQUIRE_DIGEST = Setting(
    "requireDigest",
    {
        "type": "boolean",
        "default": False,
        "description": "Require every image to be pinned by an @sha256: digest (production).",
    },
)
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageReference:
    repository: str
    tag: str | None
    digest: str | None


def parse_image(reference: str) -> ImageReference:
    name, _, digest = reference.partition("@")
    repository, tag = name, None
    if ":" in name.rsplit("/", 1)[-1]:
        repository, tag = name.rsplit(":", 1)
    return ImageReference(repository, tag or None, digest or None)


def check_image(subject: Subject, settings: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    require_digest = settings.flag(REQUIRE_DIGEST.key)
    for container in containers(pod):
        path = f"{container.path}.image"
        try:
            image = as_str(container.spec.get("image"))
        except UnknownValueError:
            # An image this update builds has no digest until it is pushed. The update runs this
            # rule again on the pushed reference before the workload is created or changed.
            continue
        if not image:
            yield Finding(path, container.spec.get("image"), "no image is set", "set an image")
            continue
        ref = parse_image(image)
        if ref.digest is not None and not _DIGEST_RE.match(ref.digest):
            yield Finding(
                path,
                image,
                "the digest is not a sha256 digest",
                "pin the image as <repository>@sha256:<64 hex digits>",
            )
        elif require_digest and ref.digest is None:
            yield Finding(
                path,
                image,
                "this stack deploys only images pinned by digest, so a retag cannot change them",
                "pin the image as <repository>[:tag]@sha256:<digest>",
            )
        if ref.digest is None and (ref.tag is None or ref.tag == "latest"):
            yield Finding(
                path,
                image,
                "an implicit or `latest` tag changes under the running workload",
                "use an explicit version tag (and a digest where required)",
            )


# --- read-only root filesystem --------------------------------------------------------------

REQUIRE_READ_ONLY_ROOT = Setting(
    "requireReadOnlyRootFilesystem",
    {
        "type": "boolean",
        "default": True,
        "description": (
            "Require readOnlyRootFilesystem (Kyverno, checkov, kube-score, Polaris); PSS does "
            "not. false turns the check off for a stack."
        ),
    },
)


def check_read_only_root(subject: Subject, settings: Settings) -> Iterator[Finding]:
    if not settings.flag(REQUIRE_READ_ONLY_ROOT.key) or (pod := _pod(subject)) is None:
        return
    for container in containers(pod):
        value = container.security_context.get("readOnlyRootFilesystem")
        if value is not True:
            yield Finding(
                f"{container.path}.securityContext.readOnlyRootFilesystem",
                value,
                "a writable root filesystem lets an intruder change the container's binaries",
                "set readOnlyRootFilesystem: true and mount emptyDir volumes for writable paths",
            )


# --- service accounts -----------------------------------------------------------------------


def check_dedicated_service_account(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    name = pod.spec.get("serviceAccountName")
    legacy = pod.spec.get("serviceAccount")
    effective = name if name is not None else legacy
    field = "serviceAccountName" if name is not None or legacy is None else "serviceAccount"
    if effective in (None, "", "default"):
        yield Finding(
            f"{pod.path}.{field}",
            effective,
            "the namespace's default ServiceAccount is shared by every workload in it",
            "create a ServiceAccount for this workload and set serviceAccountName to it",
        )


def _declares_api_need(*metas: Mapping[str, Any]) -> bool:
    return any(as_str(annotations_of(meta).get(NEEDS_KUBERNETES_API_ANNOTATION)) for meta in metas)


def check_token_automount(subject: Subject, _: Settings) -> Iterator[Finding]:
    fix = (
        f"set automountServiceAccountToken: false, or annotate the workload with "
        f'"{NEEDS_KUBERNETES_API_ANNOTATION}: <why it calls the API>"'
    )
    problem = "a mounted API token is a credential an intruder can use against the cluster"
    if subject.kind == "ServiceAccount":
        value = subject.props.get("automountServiceAccountToken")
        if value is not False and not _declares_api_need(subject.metadata):
            yield Finding("automountServiceAccountToken", value, problem, fix)
        return
    if (pod := _pod(subject)) is None:
        return
    value = pod.spec.get("automountServiceAccountToken")
    if value is not False and not _declares_api_need(subject.metadata, pod.metadata):
        yield Finding(f"{pod.path}.automountServiceAccountToken", value, problem, fix)


# --- namespace, labels, bare pods -----------------------------------------------------------


def check_namespace(subject: Subject, _: Settings) -> Iterator[Finding]:
    kind = subject.kind
    if kind is None:
        return
    if kind == "Namespace" and subject.object_name == DEFAULT_NAMESPACE:
        yield Finding(
            "metadata.name",
            DEFAULT_NAMESPACE,
            "the default namespace must not be managed as an application namespace",
            "create a dedicated Namespace",
        )
        return
    if not is_namespaced(kind):
        return
    namespace = subject.metadata.get("namespace")
    if namespace in (None, "", DEFAULT_NAMESPACE):
        yield Finding(
            "metadata.namespace",
            namespace,
            "an omitted namespace means `default`, where policies and quotas of the platform do not apply",
            "set metadata.namespace to the component's namespace",
        )


RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
)
EXPECTED_LABEL_VALUES = Setting(
    "expectedValues",
    {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "default": {
            "app.kubernetes.io/part-of": "support-platform",
            "app.kubernetes.io/managed-by": "pulumi",
        },
        "description": "Recommended labels whose value is fixed for the whole program.",
    },
)


def check_labels(subject: Subject, settings: Settings) -> Iterator[Finding]:
    if subject.kind is None:
        return
    expected = settings.mapping(EXPECTED_LABEL_VALUES.key)
    places: list[tuple[str, Mapping[str, Any]]] = [("metadata", subject.metadata)]
    pod = _pod(subject)
    if pod is not None and subject.kind != "Pod":
        places.append((pod.metadata_path, pod.metadata))
    for path, meta in places:
        present = labels_of(meta)
        for key in RECOMMENDED_LABELS:
            value = present.get(key)
            if not as_str(value):
                yield Finding(
                    f'{path}.labels["{key}"]',
                    value,
                    "the recommended labels identify the object to tools and dashboards",
                    f"set {key} (use the shared label helper)",
                )
            elif key in expected and value != expected[key]:
                yield Finding(
                    f'{path}.labels["{key}"]',
                    value,
                    f"every object of this program carries {key}={expected[key]}",
                    f"set {key} to {expected[key]}",
                )


def check_bare_pod(subject: Subject, _: Settings) -> Iterator[Finding]:
    if subject.kind == "Pod":
        yield Finding(
            "kind",
            "Pod",
            "a bare pod is not rescheduled when its node fails",
            "run it through a Deployment, StatefulSet, DaemonSet or Job",
        )


# --- API versions ---------------------------------------------------------------------------

_PRE_RELEASE_RE = re.compile(r"^v\d+(alpha|beta)\d*$")
# Where a removed or pre-release API went when it graduated.
_STABLE_SUCCESSOR = {
    ("extensions", "Ingress"): "networking.k8s.io/v1",
    ("extensions", "NetworkPolicy"): "networking.k8s.io/v1",
    ("extensions", "PodSecurityPolicy"): "pod-security admission (the API was removed)",
}
_STABLE_GROUP_VERSION = {
    "extensions": "apps/v1",
    "apps": "apps/v1",
    "batch": "batch/v1",
    "policy": "policy/v1",
    "autoscaling": "autoscaling/v2",
    "networking.k8s.io": "networking.k8s.io/v1",
    "rbac.authorization.k8s.io": "rbac.authorization.k8s.io/v1",
    "storage.k8s.io": "storage.k8s.io/v1",
    "scheduling.k8s.io": "scheduling.k8s.io/v1",
    "coordination.k8s.io": "coordination.k8s.io/v1",
    "discovery.k8s.io": "discovery.k8s.io/v1",
    "events.k8s.io": "events.k8s.io/v1",
    "node.k8s.io": "node.k8s.io/v1",
    "certificates.k8s.io": "certificates.k8s.io/v1",
    "admissionregistration.k8s.io": "admissionregistration.k8s.io/v1",
    "apiextensions.k8s.io": "apiextensions.k8s.io/v1",
    "apiregistration.k8s.io": "apiregistration.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io": "flowcontrol.apiserver.k8s.io/v1",
    "gateway.networking.k8s.io": "gateway.networking.k8s.io/v1",
    "cert-manager.io": "cert-manager.io/v1",
    "monitoring.coreos.com": "monitoring.coreos.com/v1",
}


def check_api_version(subject: Subject, _: Settings) -> Iterator[Finding]:
    token = parse_type(subject.resource_type)
    if token is None or token.package != K8S_PACKAGE or not _PRE_RELEASE_RE.match(token.version):
        return
    successor = _STABLE_SUCCESSOR.get((token.group, token.kind)) or _STABLE_GROUP_VERSION.get(
        token.group, "the GA (v1 or later) version of the API"
    )
    yield Finding(
        "apiVersion",
        token.api_version,
        "alpha and beta APIs change without notice and are removed in later Kubernetes releases",
        f"use {successor} for {token.kind}",
    )


def _policy(
    name: str,
    description: str,
    check: ResourceCheck,
    severity: Severity = Severity.MEDIUM,
    settings: tuple[Setting, ...] = (),
) -> ResourceValidationPolicy:
    return resource_policy(
        name=name,
        description=description,
        check=check,
        severity=severity,
        tags=_TAGS,
        settings=settings,
    )


container_resources = _policy(
    "container-resources",
    "Containers request CPU and memory and limit memory (CPU limit per stack setting).",
    check_resources,
    settings=(REQUIRE_CPU_LIMIT,),
)
container_probes = _policy(
    "container-probes",
    "Long-running containers have readiness and liveness probes, and they differ.",
    check_probes,
)
image_tag_pinned = _policy(
    "image-tag-pinned",
    "Images carry an explicit tag other than latest; a sha256 digest where the stack requires it.",
    check_image,
    Severity.HIGH,
    settings=(REQUIRE_DIGEST,),
)
read_only_root_filesystem = _policy(
    "read-only-root-filesystem",
    "Containers run with a read-only root filesystem; writable paths are emptyDir volumes.",
    check_read_only_root,
    settings=(REQUIRE_READ_ONLY_ROOT,),
)
dedicated_service_account = _policy(
    "dedicated-service-account",
    "Pods run under their own ServiceAccount, never the namespace's default.",
    check_dedicated_service_account,
)
no_service_account_token_automount = _policy(
    "no-service-account-token-automount",
    "Pods and ServiceAccounts do not automount an API token unless they declare they need it.",
    check_token_automount,
    Severity.HIGH,
)
no_default_namespace = _policy(
    "no-default-namespace",
    "Namespaced objects name an explicit namespace other than default.",
    check_namespace,
)
recommended_labels = _policy(
    "recommended-labels",
    "Objects and pod templates carry the app.kubernetes.io recommended labels.",
    check_labels,
    Severity.LOW,
    settings=(EXPECTED_LABEL_VALUES,),
)
no_bare_pods = _policy(
    "no-bare-pods",
    "Pods are created only through controllers.",
    check_bare_pod,
)
stable_api_versions = _policy(
    "stable-api-versions",
    "Resources use GA API versions: no alpha, beta or removed apiVersions.",
    check_api_version,
)

POLICIES = (
    container_resources,
    container_probes,
    image_tag_pinned,
    read_only_root_filesystem,
    dedicated_service_account,
    no_service_account_token_automount,
    no_default_namespace,
    recommended_labels,
    no_bare_pods,
    stable_api_versions,
)
