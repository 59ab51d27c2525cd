"""Pod Security Standards, restricted profile: hardening beyond baseline (capabilities, escalation,
user, seccomp, volume types). The restricted profile includes baseline (see `baseline.py`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from ..framework import Finding, Setting, Settings, Subject, Theme
from ..k8s import as_mapping, as_number, as_sequence, as_str
from ..pod_specs import Container, PodTemplate, containers, effective_security, pod_template, security_contexts

_THEME = Theme(("pod-security", "pss"), Severity.HIGH)

ALLOWED_SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost"})
ALLOWED_VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)


def _pod(subject: Subject) -> PodTemplate | None:
    return pod_template(subject.resource_type, subject.props)


def check_capabilities(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    for container in containers(pod):
        caps = as_mapping(container.security_context.get("capabilities"))
        drop = [c for c in as_sequence(caps.get("drop")) if isinstance(c, str)]
        if "ALL" not in drop:
            yield Finding(
                f"{container.path}.securityContext.capabilities.drop",
                caps.get("drop"),
                "the container keeps the runtime's default capabilities",
                'set securityContext.capabilities.drop to ["ALL"]',
            )
        added = [c for c in as_sequence(caps.get("add")) if c != "NET_BIND_SERVICE"]
        if added:
            yield Finding(
                f"{container.path}.securityContext.capabilities.add",
                caps.get("add"),
                "only NET_BIND_SERVICE may be added back under the restricted profile",
                "remove every added capability except NET_BIND_SERVICE",
            )


def check_privilege_escalation(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    for container in containers(pod):
        value = container.security_context.get("allowPrivilegeEscalation")
        if value is not False:
            yield Finding(
                f"{container.path}.securityContext.allowPrivilegeEscalation",
                value,
                "setuid binaries can gain privileges unless escalation is switched off",
                "set securityContext.allowPrivilegeEscalation to false",
            )


MINIMUM_UID = Setting(
    "minimumUid",
    {
        "type": "integer",
        "minimum": 0,
        "default": 0,
        "description": (
            "0 applies the PSS rule only (runAsUser must not be 0). A higher value additionally "
            "requires an explicit runAsUser of at least this UID (kube-score, checkov CKV_K8S_40)."
        ),
    },
)


def check_run_as_non_root(subject: Subject, settings: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    minimum_uid = settings.number(MINIMUM_UID.key)
    # An explicit UID 0 anywhere is root, even where another level sets something else.
    for path, context in security_contexts(pod):
        uid = context.get("runAsUser")
        if uid is not None and as_number(uid) == 0:
            yield Finding(
                f"{path}.runAsUser",
                uid,
                "UID 0 is root",
                f"set runAsUser to a non-root UID{_uid_hint(minimum_uid)}",
            )
    pod_non_root = pod.security_context.get("runAsNonRoot")
    if pod_non_root is False:
        yield Finding(
            f"{pod.path}.securityContext.runAsNonRoot",
            pod_non_root,
            "the pod allows containers to run as root",
            "set securityContext.runAsNonRoot to true",
        )
    for container in containers(pod):
        yield from _container_non_root(container, minimum_uid)


def _uid_hint(minimum_uid: float) -> str:
    return f" of at least {int(minimum_uid)}" if minimum_uid > 0 else ""


def _container_non_root(container: Container, minimum_uid: float) -> Iterator[Finding]:
    non_root = effective_security(container, "runAsNonRoot")
    if non_root.value is not True and not (non_root.from_pod and non_root.value is False):
        yield Finding(
            non_root.path,
            non_root.value,
            "without runAsNonRoot the kubelet starts the image's user, which may be root",
            "set runAsNonRoot: true on the container or the pod securityContext",
        )
    if minimum_uid <= 0:
        return
    uid = effective_security(container, "runAsUser")
    uid_number = as_number(uid.value)
    if uid_number is None or (0 < uid_number < minimum_uid):
        yield Finding(
            uid.path,
            uid.value,
            f"this stack requires an explicit UID of at least {int(minimum_uid)}, clear of host and image users",
            f"set runAsUser to {int(minimum_uid)} or higher on the container or the pod",
        )


def check_seccomp(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    pod_type = as_mapping(pod.security_context.get("seccompProfile")).get("type")
    if pod.security_context.get("seccompProfile") is not None and (pod_type not in ALLOWED_SECCOMP_TYPES):
        yield Finding(
            f"{pod.path}.securityContext.seccompProfile.type",
            pod_type,
            "the pod runs without the runtime's syscall filter",
            "set seccompProfile.type to RuntimeDefault (or Localhost)",
        )
    for container in containers(pod):
        own = container.security_context.get("seccompProfile")
        own_type = as_mapping(own).get("type")
        if own is not None and own_type not in ALLOWED_SECCOMP_TYPES:
            yield Finding(
                f"{container.path}.securityContext.seccompProfile.type",
                own_type,
                "the container runs without the runtime's syscall filter",
                "set seccompProfile.type to RuntimeDefault (or Localhost)",
            )
        elif own is None and pod.security_context.get("seccompProfile") is None:
            yield Finding(
                f"{container.path}.securityContext.seccompProfile.type",
                None,
                "no seccomp profile applies to this container",
                "set securityContext.seccompProfile.type: RuntimeDefault on the pod",
            )


def check_volume_types(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    for index, volume in enumerate(as_sequence(pod.spec.get("volumes"))):
        vol: Mapping[str, Any] = as_mapping(volume)
        label = as_str(vol.get("name")) or str(index)
        for source in vol:
            if source == "name" or source in ALLOWED_VOLUME_SOURCES or vol.get(source) is None:
                continue
            yield Finding(
                f"{pod.path}.volumes[{label}].{source}",
                source,
                "the restricted profile allows only core volume types",
                f"use one of {', '.join(sorted(ALLOWED_VOLUME_SOURCES))} (a persistentVolumeClaim for storage)",
            )


pss_restricted_capabilities = _THEME.policy(
    "pss-restricted-capabilities",
    "PSS restricted: drop ALL capabilities; add back only NET_BIND_SERVICE.",
    check_capabilities,
)
pss_no_privilege_escalation = _THEME.policy(
    "pss-no-privilege-escalation",
    "PSS restricted: allowPrivilegeEscalation must be false on every container.",
    check_privilege_escalation,
)
pss_run_as_non_root = _THEME.policy(
    "pss-run-as-non-root",
    "PSS restricted: runAsNonRoot true and runAsUser never 0; optionally a minimum UID.",
    check_run_as_non_root,
    settings=(MINIMUM_UID,),
)
pss_seccomp_profile = _THEME.policy(
    "pss-seccomp-profile",
    "PSS restricted: every container runs under the RuntimeDefault or a Localhost seccomp profile.",
    check_seccomp,
)
pss_restricted_volume_types = _THEME.policy(
    "pss-restricted-volume-types",
    "PSS restricted: only core volume types (configMap, csi, downwardAPI, emptyDir, ephemeral, "
    "image, persistentVolumeClaim, projected, secret).",
    check_volume_types,
)

POLICIES = (
    pss_restricted_capabilities,
    pss_no_privilege_escalation,
    pss_run_as_non_root,
    pss_seccomp_profile,
    pss_restricted_volume_types,
)
