"""PSS restricted (baseline included): one failing and one passing case per control, on every
workload kind and, where the control is per container, every container list."""

from __future__ import annotations

from typing import Any

import pytest

from support_policies import pod_security as pss

from .fixtures import (
    CONTAINER_LISTS,
    POD_SPEC_PATHS,
    WORKLOAD_KINDS,
    assert_finding,
    check_resource,
    container,
    pod_metadata_of,
    pod_metadata_path,
    pod_spec,
    subject_label,
    with_container,
    workload,
)

KINDS = pytest.mark.parametrize("kind", WORKLOAD_KINDS)
LISTS = pytest.mark.parametrize("list_name", CONTAINER_LISTS)


def extra_container(kind: str, list_name: str, **security: Any) -> tuple[str, dict[str, Any]]:
    """A compliant workload plus a container "extra" in `list_name` with `security` overrides."""
    entry = container("extra", list_name)
    entry["securityContext"].update(security)
    return with_container(kind, list_name, entry)


def cpath(kind: str, list_name: str, name: str = "extra") -> str:
    return f"{POD_SPEC_PATHS[kind]}.{list_name}[{name}]"


def pod_sc_path(kind: str) -> str:
    return f"{POD_SPEC_PATHS[kind]}.securityContext"


# --- privileged -----------------------------------------------------------------------------


@KINDS
@LISTS
def test_privileged_container_fails(kind: str, list_name: str) -> None:
    messages = check_resource(pss.pss_no_privileged_containers, *extra_container(kind, list_name, privileged=True))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.privileged",
        found="true",
        fix="set it to false",
    )


@KINDS
def test_unprivileged_passes(kind: str) -> None:
    assert check_resource(pss.pss_no_privileged_containers, *workload(kind)) == []


# --- host namespaces ------------------------------------------------------------------------


@KINDS
@pytest.mark.parametrize("field", ["hostNetwork", "hostPID", "hostIPC"])
def test_host_namespace_fails(kind: str, field: str) -> None:
    spec = pod_spec(kind)
    spec[field] = True
    messages = check_resource(pss.pss_no_host_namespaces, *workload(kind, spec))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{POD_SPEC_PATHS[kind]}.{field}",
        found="true",
        fix=f"remove {field}",
    )


@KINDS
def test_host_namespaces_false_pass(kind: str) -> None:
    spec = pod_spec(kind)
    spec.update(hostNetwork=False, hostPID=False, hostIPC=False)
    assert check_resource(pss.pss_no_host_namespaces, *workload(kind, spec)) == []


# --- hostPath and hostPort ------------------------------------------------------------------


@KINDS
def test_host_path_volume_fails(kind: str) -> None:
    spec = pod_spec(kind)
    spec["volumes"].append({"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}})
    messages = check_resource(pss.pss_no_host_path_volumes, *workload(kind, spec))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{POD_SPEC_PATHS[kind]}.volumes[docker].hostPath",
        found='{"path": "/var/run/docker.sock"}',
        fix="emptyDir",
    )


@KINDS
def test_without_host_path_passes(kind: str) -> None:
    assert check_resource(pss.pss_no_host_path_volumes, *workload(kind)) == []


@KINDS
@LISTS
def test_host_port_fails(kind: str, list_name: str) -> None:
    entry = container("extra", list_name, ports=[{"name": "metrics", "containerPort": 9090, "hostPort": 9090}])
    messages = check_resource(pss.pss_no_host_ports, *with_container(kind, list_name, entry))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.ports[metrics].hostPort",
        found="9090",
        fix="remove hostPort",
    )


@KINDS
def test_host_port_zero_passes(kind: str) -> None:
    entry = container("extra", ports=[{"containerPort": 9090, "hostPort": 0}])
    assert check_resource(pss.pss_no_host_ports, *with_container(kind, "containers", entry)) == []


# --- baseline misc --------------------------------------------------------------------------


@KINDS
@LISTS
def test_unmasked_proc_mount_fails(kind: str, list_name: str) -> None:
    messages = check_resource(pss.pss_default_proc_mount, *extra_container(kind, list_name, procMount="Unmasked"))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.procMount",
        found='"Unmasked"',
        fix="set it to Default",
    )


@KINDS
def test_default_proc_mount_passes(kind: str) -> None:
    assert check_resource(pss.pss_default_proc_mount, *extra_container(kind, "containers", procMount="Default")) == []


@KINDS
def test_unsafe_sysctl_fails(kind: str) -> None:
    spec = pod_spec(kind)
    spec["securityContext"]["sysctls"] = [
        {"name": "net.ipv4.tcp_keepalive_time", "value": "600"},
        {"name": "kernel.msgmax", "value": "65536"},
    ]
    messages = check_resource(pss.pss_safe_sysctls, *workload(kind, spec))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{pod_sc_path(kind)}.sysctls[1].name",
        found='"kernel.msgmax"',
        fix="allowed sysctls are",
    )


@KINDS
def test_safe_sysctls_pass(kind: str) -> None:
    spec = pod_spec(kind)
    spec["securityContext"]["sysctls"] = [{"name": n, "value": "1"} for n in sorted(pss.SAFE_SYSCTLS)]
    assert check_resource(pss.pss_safe_sysctls, *workload(kind, spec)) == []


@KINDS
def test_pod_level_unconfined_apparmor_fails(kind: str) -> None:
    spec = pod_spec(kind)
    spec["securityContext"]["appArmorProfile"] = {"type": "Unconfined"}
    messages = check_resource(pss.pss_apparmor_not_unconfined, *workload(kind, spec))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{pod_sc_path(kind)}.appArmorProfile.type",
        found='"Unconfined"',
        fix="RuntimeDefault",
    )


@KINDS
@LISTS
def test_container_unconfined_apparmor_fails(kind: str, list_name: str) -> None:
    props = extra_container(kind, list_name, appArmorProfile={"type": "Unconfined"})
    messages = check_resource(pss.pss_apparmor_not_unconfined, *props)
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.appArmorProfile.type",
        found='"Unconfined"',
        fix="RuntimeDefault",
    )


@KINDS
def test_unconfined_apparmor_annotation_fails(kind: str) -> None:
    key = "container.apparmor.security.beta.kubernetes.io/api"
    resource_type, props = workload(kind)
    pod_metadata_of(kind, props)["annotations"] = {key: "unconfined"}
    messages = check_resource(pss.pss_apparmor_not_unconfined, resource_type, props)
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f'{pod_metadata_path(kind)}.annotations["{key}"]',
        found='"unconfined"',
        fix="runtime/default",
    )


@KINDS
@pytest.mark.parametrize("profile", ["RuntimeDefault", "Localhost"])
def test_allowed_apparmor_profiles_pass(kind: str, profile: str) -> None:
    spec = pod_spec(kind)
    spec["securityContext"]["appArmorProfile"] = {"type": profile, "localhostProfile": "k8s-api"}
    spec["containers"][0]["securityContext"]["appArmorProfile"] = {"type": profile}
    assert check_resource(pss.pss_apparmor_not_unconfined, *workload(kind, spec)) == []


@pytest.mark.parametrize("annotation", ["runtime/default", "localhost/k8s-api"])
def test_allowed_apparmor_annotations_pass(annotation: str) -> None:
    resource_type, props = workload("Deployment")
    props["spec"]["template"]["metadata"]["annotations"] = {
        "container.apparmor.security.beta.kubernetes.io/api": annotation
    }
    assert check_resource(pss.pss_apparmor_not_unconfined, resource_type, props) == []


@KINDS
@LISTS
def test_custom_selinux_type_fails(kind: str, list_name: str) -> None:
    props = extra_container(kind, list_name, seLinuxOptions={"type": "spc_t"})
    messages = check_resource(pss.pss_restricted_selinux_options, *props)
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.seLinuxOptions.type",
        found='"spc_t"',
        fix="container_t",
    )


@KINDS
@pytest.mark.parametrize("field", ["user", "role"])
def test_selinux_user_or_role_fails(kind: str, field: str) -> None:
    spec = pod_spec(kind)
    spec["securityContext"]["seLinuxOptions"] = {field: "system_u"}
    messages = check_resource(pss.pss_restricted_selinux_options, *workload(kind, spec))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{pod_sc_path(kind)}.seLinuxOptions.{field}",
        found='"system_u"',
        fix=f"remove seLinuxOptions.{field}",
    )


@KINDS
def test_container_selinux_type_and_level_pass(kind: str) -> None:
    spec = pod_spec(kind)
    spec["securityContext"]["seLinuxOptions"] = {"type": "container_t", "level": "s0:c123,c456"}
    assert check_resource(pss.pss_restricted_selinux_options, *workload(kind, spec)) == []


@KINDS
def test_pod_level_windows_host_process_fails(kind: str) -> None:
    spec = pod_spec(kind)
    spec["securityContext"]["windowsOptions"] = {"hostProcess": True}
    messages = check_resource(pss.pss_no_windows_host_process, *workload(kind, spec))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{pod_sc_path(kind)}.windowsOptions.hostProcess",
        found="true",
        fix="remove windowsOptions.hostProcess",
    )


@KINDS
@LISTS
def test_container_windows_host_process_fails(kind: str, list_name: str) -> None:
    props = extra_container(kind, list_name, windowsOptions={"hostProcess": True})
    messages = check_resource(pss.pss_no_windows_host_process, *props)
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.windowsOptions.hostProcess",
        found="true",
    )


@KINDS
def test_windows_options_without_host_process_pass(kind: str) -> None:
    props = extra_container(kind, "containers", windowsOptions={"hostProcess": False, "runAsUserName": "app"})
    assert check_resource(pss.pss_no_windows_host_process, *props) == []


@KINDS
@pytest.mark.parametrize(
    ("field", "handler"),
    [
        ("livenessProbe", {"httpGet": {"host": "10.0.0.1", "path": "/", "port": 80}}),
        ("readinessProbe", {"tcpSocket": {"host": "metadata.internal", "port": 80}}),
        ("startupProbe", {"httpGet": {"host": "169.254.169.254", "path": "/", "port": 80}}),
    ],
)
@pytest.mark.parametrize("list_name", ["containers", "initContainers"])
def test_probe_host_fails(kind: str, field: str, handler: dict[str, Any], list_name: str) -> None:
    entry = container("extra", list_name, **{field: handler})
    messages = check_resource(pss.pss_no_probe_or_lifecycle_host, *with_container(kind, list_name, entry))
    action = next(iter(handler))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.{field}.{action}.host",
        found=f'"{handler[action]["host"]}"',
        fix="remove the host field",
    )


@KINDS
@pytest.mark.parametrize("hook", ["postStart", "preStop"])
def test_lifecycle_host_fails(kind: str, hook: str) -> None:
    entry = container("extra", lifecycle={hook: {"httpGet": {"host": "example.com", "path": "/", "port": 80}}})
    messages = check_resource(pss.pss_no_probe_or_lifecycle_host, *with_container(kind, "containers", entry))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, 'containers')}.lifecycle.{hook}.httpGet.host",
        found='"example.com"',
    )


@KINDS
def test_probes_without_host_pass(kind: str) -> None:
    entry = container("extra", lifecycle={"preStop": {"sleep": {"seconds": 5}}})
    entry["livenessProbe"]["httpGet"]["host"] = ""
    assert check_resource(pss.pss_no_probe_or_lifecycle_host, *with_container(kind, "containers", entry)) == []


# --- restricted -----------------------------------------------------------------------------


@KINDS
@LISTS
def test_capabilities_not_dropped_fails(kind: str, list_name: str) -> None:
    props = extra_container(kind, list_name, capabilities={"drop": ["NET_RAW"]})
    messages = check_resource(pss.pss_restricted_capabilities, *props)
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.capabilities.drop",
        found='["NET_RAW"]',
        fix='drop to ["ALL"]',
    )


@KINDS
@LISTS
def test_added_capability_fails(kind: str, list_name: str) -> None:
    props = extra_container(kind, list_name, capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "SYS_ADMIN"]})
    messages = check_resource(pss.pss_restricted_capabilities, *props)
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.capabilities.add",
        found='["NET_BIND_SERVICE", "SYS_ADMIN"]',
        fix="except NET_BIND_SERVICE",
    )


@KINDS
def test_drop_all_add_net_bind_service_passes(kind: str) -> None:
    props = extra_container(kind, "containers", capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})
    assert check_resource(pss.pss_restricted_capabilities, *props) == []


@KINDS
@LISTS
@pytest.mark.parametrize(("value", "found"), [(True, "true"), (None, "<unset>")])
def test_privilege_escalation_fails(kind: str, list_name: str, value: bool | None, found: str) -> None:
    entry = container("extra", list_name)
    if value is None:
        del entry["securityContext"]["allowPrivilegeEscalation"]
    else:
        entry["securityContext"]["allowPrivilegeEscalation"] = value
    messages = check_resource(pss.pss_no_privilege_escalation, *with_container(kind, list_name, entry))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.allowPrivilegeEscalation",
        found=found,
        fix="allowPrivilegeEscalation to false",
    )


@KINDS
def test_privilege_escalation_false_passes(kind: str) -> None:
    assert check_resource(pss.pss_no_privilege_escalation, *workload(kind)) == []


@KINDS
@LISTS
def test_container_run_as_non_root_false_fails(kind: str, list_name: str) -> None:
    messages = check_resource(pss.pss_run_as_non_root, *extra_container(kind, list_name, runAsNonRoot=False))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.runAsNonRoot",
        found="false",
        fix="runAsNonRoot: true",
    )


@KINDS
@LISTS
def test_container_uid_zero_fails(kind: str, list_name: str) -> None:
    messages = check_resource(pss.pss_run_as_non_root, *extra_container(kind, list_name, runAsUser=0))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.runAsUser",
        found="0",
        fix="non-root UID",
    )


@KINDS
def test_pod_uid_zero_fails_even_when_containers_override(kind: str) -> None:
    spec = pod_spec(kind)
    spec["securityContext"]["runAsUser"] = 0
    messages = check_resource(pss.pss_run_as_non_root, *workload(kind, spec))
    assert_finding(messages, subject=subject_label(kind), path=f"{pod_sc_path(kind)}.runAsUser", found="0")


@KINDS
@LISTS
def test_run_as_non_root_unset_everywhere_fails(kind: str, list_name: str) -> None:
    spec = pod_spec(kind)
    del spec["securityContext"]["runAsNonRoot"]
    entry = container("extra", list_name)
    del entry["securityContext"]["runAsNonRoot"]
    spec.setdefault(list_name, []).append(entry)
    messages = check_resource(pss.pss_run_as_non_root, *workload(kind, spec))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.runAsNonRoot",
        found="<unset>",
        fix="on the container or the pod securityContext",
    )


@KINDS
def test_pod_level_run_as_non_root_covers_containers(kind: str) -> None:
    spec = pod_spec(kind)
    for entry in spec["containers"]:
        del entry["securityContext"]["runAsNonRoot"]
        del entry["securityContext"]["runAsUser"]
    assert check_resource(pss.pss_run_as_non_root, *workload(kind, spec)) == []
    assert check_resource(pss.pss_run_as_non_root, *workload(kind, spec), config={"minimumUid": 10000}) == []


@KINDS
@LISTS
def test_uid_below_minimum_fails_only_with_the_stricter_setting(kind: str, list_name: str) -> None:
    props = extra_container(kind, list_name, runAsUser=1000)
    assert check_resource(pss.pss_run_as_non_root, *props) == []
    messages = check_resource(pss.pss_run_as_non_root, *props, config={"minimumUid": 10000})
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.runAsUser",
        found="1000",
        fix="set runAsUser to 10000 or higher",
    )


@KINDS
def test_minimum_uid_requires_an_explicit_uid(kind: str) -> None:
    spec = pod_spec(kind)
    del spec["securityContext"]["runAsUser"]
    del spec["containers"][0]["securityContext"]["runAsUser"]
    assert check_resource(pss.pss_run_as_non_root, *workload(kind, spec)) == []
    messages = check_resource(pss.pss_run_as_non_root, *workload(kind, spec), config={"minimumUid": 10000})
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, 'containers', 'api')}.securityContext.runAsUser",
        found="<unset>",
    )


@KINDS
@LISTS
def test_missing_seccomp_fails(kind: str, list_name: str) -> None:
    spec = pod_spec(kind)
    del spec["securityContext"]["seccompProfile"]
    spec["containers"][0]["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}
    entry = container("extra", list_name)
    del entry["securityContext"]["seccompProfile"]
    spec.setdefault(list_name, []).append(entry)
    messages = check_resource(pss.pss_seccomp_profile, *workload(kind, spec))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.seccompProfile.type",
        found="<unset>",
        fix="seccompProfile.type: RuntimeDefault on the pod",
    )


@KINDS
@LISTS
def test_unconfined_seccomp_fails(kind: str, list_name: str) -> None:
    props = extra_container(kind, list_name, seccompProfile={"type": "Unconfined"})
    messages = check_resource(pss.pss_seccomp_profile, *props)
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.seccompProfile.type",
        found='"Unconfined"',
        fix="RuntimeDefault",
    )


@KINDS
def test_pod_unconfined_seccomp_fails(kind: str) -> None:
    spec = pod_spec(kind)
    spec["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    messages = check_resource(pss.pss_seccomp_profile, *workload(kind, spec))
    assert_finding(
        messages, subject=subject_label(kind), path=f"{pod_sc_path(kind)}.seccompProfile.type", found='"Unconfined"'
    )


@KINDS
def test_pod_level_seccomp_covers_containers(kind: str) -> None:
    spec = pod_spec(kind)
    del spec["containers"][0]["securityContext"]["seccompProfile"]
    spec["initContainers"] = [
        container(
            "init",
            "initContainers",
            securityContext={"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
        )
    ]
    assert check_resource(pss.pss_seccomp_profile, *workload(kind, spec)) == []


@KINDS
@pytest.mark.parametrize(
    "source",
    [
        {"nfs": {"server": "nfs", "path": "/"}},
        {"gitRepo": {"repository": "x"}},
        {"awsElasticBlockStore": {"volumeID": "v"}},
    ],
)
def test_non_core_volume_fails(kind: str, source: dict[str, Any]) -> None:
    spec = pod_spec(kind)
    spec["volumes"].append({"name": "data", **source})
    messages = check_resource(pss.pss_restricted_volume_types, *workload(kind, spec))
    source_type = next(iter(source))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{POD_SPEC_PATHS[kind]}.volumes[data].{source_type}",
        found=f'"{source_type}"',
        fix="persistentVolumeClaim",
    )


@KINDS
def test_core_volume_types_pass(kind: str) -> None:
    spec = pod_spec(kind)
    spec["volumes"] += [
        {"name": "config", "configMap": {"name": "api"}},
        {"name": "creds", "secret": {"secretName": "api"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "token", "projected": {"sources": []}},
        {"name": "info", "downwardAPI": {"items": []}},
        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
        {"name": "model", "image": {"reference": "registry.example.com/model:1"}},
        {"name": "csi", "csi": {"driver": "secrets-store.csi.k8s.io"}},
    ]
    assert check_resource(pss.pss_restricted_volume_types, *workload(kind, spec)) == []
