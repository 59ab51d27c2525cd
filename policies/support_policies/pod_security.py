"""Pod Security Standards, restricted profile (which includes baseline), on every pod template.

Each control of the standard is its own policy so that a stack can relax or exempt one control
without touching the others. Field lists follow the pod-security admission controller's checks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import ResourceValidationPolicy, Severity

from .framework import Finding, ResourceCheck, Setting, Settings, Subject, resource_policy
from .k8s import as_mapping, as_number, as_sequence, as_str
from .pod_specs import (
    Container,
    PodTemplate,
    containers,
    effective_security,
    pod_template,
    security_contexts,
)

_TAGS = ("pod-security", "pss")

SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ping_group_range",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.tcp_wmem",
    }
)
SAFE_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
ALLOWED_APPARMOR_TYPES = frozenset({"RuntimeDefault", "Localhost"})
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
PROBE_FIELDS = ("livenessProbe", "readinessProbe", "startupProbe")
LIFECYCLE_HOOKS = ("postStart", "preStop")


def _pod(subject: Subject) -> PodTemplate | None:
    return pod_template(subject.resource_type, subject.props)


# --- baseline -------------------------------------------------------------------------------


def check_privileged(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    for container in containers(pod):
        value = container.security_context.get("privileged")
        if value is True:
            yield Finding(
                f"{container.path}.securityContext.privileged",
                value,
                "a privileged container has all host devices and capabilities",
                "remove securityContext.privileged or set it to false",
            )


def check_host_namespaces(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        value = pod.spec.get(field)
        if value is True:
            yield Finding(
                f"{pod.path}.{field}",
                value,
                "sharing a host namespace lets the pod see or reach host processes and traffic",
                f"remove {field} or set it to false",
            )


def check_host_path(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    for index, volume in enumerate(as_sequence(pod.spec.get("volumes"))):
        vol = as_mapping(volume)
        if vol.get("hostPath") is not None:
            label = as_str(vol.get("name")) or str(index)
            yield Finding(
                f"{pod.path}.volumes[{label}].hostPath",
                vol.get("hostPath"),
                "a hostPath volume exposes the node's filesystem to the pod",
                "use an emptyDir, configMap, secret or persistentVolumeClaim volume instead",
            )


def check_host_ports(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    for container in containers(pod):
        for index, port in enumerate(as_sequence(container.spec.get("ports"))):
            port_map = as_mapping(port)
            host_port = port_map.get("hostPort")
            if host_port is not None and as_number(host_port) != 0:
                label = as_str(port_map.get("name")) or str(index)
                yield Finding(
                    f"{container.path}.ports[{label}].hostPort",
                    host_port,
                    "a hostPort binds the node's network interface and bypasses NetworkPolicy",
                    "remove hostPort and expose the port through a Service",
                )


def check_proc_mount(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    for container in containers(pod):
        value = container.security_context.get("procMount")
        if value is not None and value != "Default":
            yield Finding(
                f"{container.path}.securityContext.procMount",
                value,
                "an unmasked /proc exposes host kernel information",
                "remove procMount or set it to Default",
            )


def check_sysctls(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    for index, sysctl in enumerate(as_sequence(pod.security_context.get("sysctls"))):
        name = as_mapping(sysctl).get("name")
        if name not in SAFE_SYSCTLS:
            yield Finding(
                f"{pod.path}.securityContext.sysctls[{index}].name",
                name,
                "only namespaced sysctls isolated from other pods are safe",
                f"remove it; allowed sysctls are {', '.join(sorted(SAFE_SYSCTLS))}",
            )


def check_apparmor(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    for path, context in security_contexts(pod):
        profile = context.get("appArmorProfile")
        if profile is None:
            continue
        profile_type = as_mapping(profile).get("type")
        if profile_type not in ALLOWED_APPARMOR_TYPES:
            yield Finding(
                f"{path}.appArmorProfile.type",
                profile_type,
                "an unconfined AppArmor profile disables the runtime's default confinement",
                "set appArmorProfile.type to RuntimeDefault (or Localhost with a reviewed profile)",
            )
    # Read only the AppArmor annotations: other values (a checksum of secrets, say) may be unknown
    # during preview, and touching one would skip this rule for the whole resource.
    for key in [k for k in pod.annotations if str(k).startswith(APPARMOR_ANNOTATION_PREFIX)]:
        value = pod.annotations[key]
        if value != "runtime/default" and not (isinstance(value, str) and value.startswith("localhost/")):
            yield Finding(
                f'{pod.metadata_path}.annotations["{key}"]',
                value,
                "the AppArmor annotation overrides the runtime's default profile",
                "use runtime/default or localhost/<profile>, or drop the deprecated annotation "
                "for securityContext.appArmorProfile",
            )


def check_selinux(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    for path, context in security_contexts(pod):
        options = context.get("seLinuxOptions")
        if options is None:
            continue
        opts = as_mapping(options)
        selinux_type = opts.get("type")
        if selinux_type is not None and selinux_type not in SAFE_SELINUX_TYPES:
            yield Finding(
                f"{path}.seLinuxOptions.type",
                selinux_type,
                "a custom SELinux type can lift the container's confinement",
                "remove seLinuxOptions.type or use container_t",
            )
        for field in ("user", "role"):
            value = opts.get(field)
            if value not in (None, ""):
                yield Finding(
                    f"{path}.seLinuxOptions.{field}",
                    value,
                    f"a custom SELinux {field} is forbidden by the baseline profile",
                    f"remove seLinuxOptions.{field}",
                )


def check_windows_host_process(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    for path, context in security_contexts(pod):
        value = as_mapping(context.get("windowsOptions")).get("hostProcess")
        if value is True:
            yield Finding(
                f"{path}.windowsOptions.hostProcess",
                value,
                "a Windows HostProcess container has full access to the node",
                "remove windowsOptions.hostProcess or set it to false",
            )


def _handler_hosts(handler: Any) -> Iterator[tuple[str, Any]]:
    for action in ("httpGet", "tcpSocket"):
        host = as_mapping(as_mapping(handler).get(action)).get("host")
        if host not in (None, ""):
            yield action, host


def check_probe_host(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    for container in containers(pod):
        handlers: list[tuple[str, Any]] = [(probe, container.spec.get(probe)) for probe in PROBE_FIELDS]
        lifecycle = as_mapping(container.spec.get("lifecycle"))
        handlers += [(f"lifecycle.{hook}", lifecycle.get(hook)) for hook in LIFECYCLE_HOOKS]
        for where, handler in handlers:
            for action, host in _handler_hosts(handler):
                yield Finding(
                    f"{container.path}.{where}.{action}.host",
                    host,
                    "a probe or hook with a host makes the kubelet connect to arbitrary addresses",
                    "remove the host field; probes target the pod's own IP",
                )


# --- restricted -----------------------------------------------------------------------------


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


def _policy(
    name: str,
    description: str,
    check: ResourceCheck,
    severity: Severity = Severity.HIGH,
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


pss_no_privileged_containers = _policy(
    "pss-no-privileged-containers",
    "PSS baseline: containers must not run privileged.",
    check_privileged,
    Severity.CRITICAL,
)
pss_no_host_namespaces = _policy(
    "pss-no-host-namespaces",
    "PSS baseline: pods must not share the host network, PID or IPC namespace.",
    check_host_namespaces,
    Severity.CRITICAL,
)
pss_no_host_path_volumes = _policy(
    "pss-no-host-path-volumes",
    "PSS baseline: pods must not mount hostPath volumes.",
    check_host_path,
    Severity.CRITICAL,
)
pss_no_host_ports = _policy(
    "pss-no-host-ports",
    "PSS baseline: containers must not bind host ports.",
    check_host_ports,
)
pss_default_proc_mount = _policy(
    "pss-default-proc-mount",
    "PSS baseline: containers must use the default (masked) /proc mount.",
    check_proc_mount,
)
pss_safe_sysctls = _policy(
    "pss-safe-sysctls",
    "PSS baseline: pods may set only the safe, namespaced sysctls.",
    check_sysctls,
)
pss_apparmor_not_unconfined = _policy(
    "pss-apparmor-not-unconfined",
    "PSS baseline: the AppArmor profile must not be overridden with an unconfined one.",
    check_apparmor,
)
pss_restricted_selinux_options = _policy(
    "pss-restricted-selinux-options",
    "PSS baseline: SELinux type only from the container_* set; user and role never set.",
    check_selinux,
)
pss_no_windows_host_process = _policy(
    "pss-no-windows-host-process",
    "PSS baseline: no Windows HostProcess containers.",
    check_windows_host_process,
    Severity.CRITICAL,
)
pss_no_probe_or_lifecycle_host = _policy(
    "pss-no-probe-or-lifecycle-host",
    "PSS baseline: probes and lifecycle handlers must not set a host.",
    check_probe_host,
    Severity.MEDIUM,
)
pss_restricted_capabilities = _policy(
    "pss-restricted-capabilities",
    "PSS restricted: drop ALL capabilities; add back only NET_BIND_SERVICE.",
    check_capabilities,
)
pss_no_privilege_escalation = _policy(
    "pss-no-privilege-escalation",
    "PSS restricted: allowPrivilegeEscalation must be false on every container.",
    check_privilege_escalation,
)
pss_run_as_non_root = _policy(
    "pss-run-as-non-root",
    "PSS restricted: runAsNonRoot true and runAsUser never 0; optionally a minimum UID.",
    check_run_as_non_root,
    settings=(MINIMUM_UID,),
)
pss_seccomp_profile = _policy(
    "pss-seccomp-profile",
    "PSS restricted: every container runs under the RuntimeDefault or a Localhost seccomp profile.",
    check_seccomp,
)
pss_restricted_volume_types = _policy(
    "pss-restricted-volume-types",
    "PSS restricted: only core volume types (configMap, csi, downwardAPI, emptyDir, ephemeral, "
    "image, persistentVolumeClaim, projected, secret).",
    check_volume_types,
)

POLICIES = (
    pss_no_privileged_containers,
    pss_no_host_namespaces,
    pss_no_host_path_volumes,
    pss_no_host_ports,
    pss_default_proc_mount,
    pss_safe_sysctls,
    pss_apparmor_not_unconfined,
    pss_restricted_selinux_options,
    pss_no_windows_host_process,
    pss_no_probe_or_lifecycle_host,
    pss_restricted_capabilities,
    pss_no_privilege_escalation,
    pss_run_as_non_root,
    pss_seccomp_profile,
    pss_restricted_volume_types,
)
