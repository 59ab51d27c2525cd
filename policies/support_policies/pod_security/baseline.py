"""Pod Security Standards, baseline profile: the controls that stop known privilege escalations.

Each control of the standard is its own policy so that a stack can relax or exempt one control
without touching the others. Field lists follow the pod-security admission controller's checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pulumi_policy import Severity

from ..framework import Finding, Settings, Subject, Theme
from ..k8s import as_mapping, as_number, as_sequence, as_str
from ..pod_specs import PodTemplate, containers, pod_template, security_contexts

_THEME = Theme(("pod-security", "pss"), Severity.HIGH)

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
PROBE_FIELDS = ("livenessProbe", "readinessProbe", "startupProbe")
LIFECYCLE_HOOKS = ("postStart", "preStop")


def _pod(subject: Subject) -> PodTemplate | None:
    return pod_template(subject.resource_type, subject.props)


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


pss_no_privileged_containers = _THEME.policy(
    "pss-no-privileged-containers",
    "PSS baseline: containers must not run privileged.",
    check_privileged,
    Severity.CRITICAL,
)
pss_no_host_namespaces = _THEME.policy(
    "pss-no-host-namespaces",
    "PSS baseline: pods must not share the host network, PID or IPC namespace.",
    check_host_namespaces,
    Severity.CRITICAL,
)
pss_no_host_path_volumes = _THEME.policy(
    "pss-no-host-path-volumes",
    "PSS baseline: pods must not mount hostPath volumes.",
    check_host_path,
    Severity.CRITICAL,
)
pss_no_host_ports = _THEME.policy(
    "pss-no-host-ports",
    "PSS baseline: containers must not bind host ports.",
    check_host_ports,
)
pss_default_proc_mount = _THEME.policy(
    "pss-default-proc-mount",
    "PSS baseline: containers must use the default (masked) /proc mount.",
    check_proc_mount,
)
pss_safe_sysctls = _THEME.policy(
    "pss-safe-sysctls",
    "PSS baseline: pods may set only the safe, namespaced sysctls.",
    check_sysctls,
)
pss_apparmor_not_unconfined = _THEME.policy(
    "pss-apparmor-not-unconfined",
    "PSS baseline: the AppArmor profile must not be overridden with an unconfined one.",
    check_apparmor,
)
pss_restricted_selinux_options = _THEME.policy(
    "pss-restricted-selinux-options",
    "PSS baseline: SELinux type only from the container_* set; user and role never set.",
    check_selinux,
)
pss_no_windows_host_process = _THEME.policy(
    "pss-no-windows-host-process",
    "PSS baseline: no Windows HostProcess containers.",
    check_windows_host_process,
    Severity.CRITICAL,
)
pss_no_probe_or_lifecycle_host = _THEME.policy(
    "pss-no-probe-or-lifecycle-host",
    "PSS baseline: probes and lifecycle handlers must not set a host.",
    check_probe_host,
    Severity.MEDIUM,
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
)
