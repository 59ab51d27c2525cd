"""Workload hygiene of every container: resources, probes, image references, read-only root filesystem."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from ..framework import Finding, Setting, Settings, Subject, Theme
from ..k8s import as_mapping, as_str, parse_quantity, to_plain
from ..pod_specs import Container, PodTemplate, containers, pod_template

_THEME = Theme(("workload-hygiene",), Severity.MEDIUM)


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


container_resources = _THEME.policy(
    "container-resources",
    "Containers request CPU and memory and limit memory (CPU limit per stack setting).",
    check_resources,
    settings=(REQUIRE_CPU_LIMIT,),
)
container_probes = _THEME.policy(
    "container-probes",
    "Long-running containers have readiness and liveness probes, and they differ.",
    check_probes,
)
image_tag_pinned = _THEME.policy(
    "image-tag-pinned",
    "Images carry an explicit tag other than latest; a sha256 digest where the stack requires it.",
    check_image,
    Severity.HIGH,
    settings=(REQUIRE_DIGEST,),
)
read_only_root_filesystem = _THEME.policy(
    "read-only-root-filesystem",
    "Containers run with a read-only root filesystem; writable paths are emptyDir volumes.",
    check_read_only_root,
    settings=(REQUIRE_READ_ONLY_ROOT,),
)

POLICIES = (
    container_resources,
    container_probes,
    image_tag_pinned,
    read_only_root_filesystem,
)
