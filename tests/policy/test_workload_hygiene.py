"""Workload hygiene: resources, probes, images, root filesystem, identity, namespace, labels,
bare pods and API versions."""

from __future__ import annotations

import pytest

from support_policies import workload_hygiene as hygiene

from .fixtures import (
    CONTAINER_LISTS,
    CONTROLLER_KINDS,
    LONG_RUNNING_KINDS,
    POD_SPEC_PATHS,
    TYPES,
    WORKLOAD_KINDS,
    assert_finding,
    check_resource,
    container,
    metadata,
    pod_metadata_of,
    pod_metadata_path,
    pod_spec,
    simple,
    subject_label,
    with_container,
    workload,
)

KINDS = pytest.mark.parametrize("kind", WORKLOAD_KINDS)
LISTS = pytest.mark.parametrize("list_name", CONTAINER_LISTS)


def cpath(kind: str, list_name: str, name: str = "extra") -> str:
    return f"{POD_SPEC_PATHS[kind]}.{list_name}[{name}]"


# --- resources ------------------------------------------------------------------------------


@KINDS
@pytest.mark.parametrize("list_name", ["containers", "initContainers"])
def test_missing_requests_and_memory_limit_fail(kind: str, list_name: str) -> None:
    entry = container("extra", list_name)
    del entry["resources"]
    messages = check_resource(hygiene.container_resources, *with_container(kind, list_name, entry))
    assert len(messages) == 3
    for section, resource in [("requests", "cpu"), ("requests", "memory"), ("limits", "memory")]:
        assert_finding(
            messages,
            subject=subject_label(kind),
            path=f"{cpath(kind, list_name)}.resources.{section}.{resource}",
            found="<unset>",
            fix=f"set resources.{section}.{resource}",
        )


@KINDS
def test_cpu_limit_is_a_stack_setting(kind: str) -> None:
    entry = container("extra")
    del entry["resources"]["limits"]["cpu"]
    props = with_container(kind, "containers", entry)
    assert check_resource(hygiene.container_resources, *props) == []
    assert check_resource(hygiene.container_resources, *props, config={"requireCpuLimit": False}) == []
    messages = check_resource(hygiene.container_resources, *props, config={"requireCpuLimit": True})
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, 'containers')}.resources.limits.cpu",
        found="<unset>",
    )


@KINDS
def test_request_above_limit_fails(kind: str) -> None:
    entry = container("extra")
    entry["resources"] = {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "1500m", "memory": "1Gi"}}
    messages = check_resource(hygiene.container_resources, *with_container(kind, "containers", entry))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, 'containers')}.resources.requests.cpu",
        found='"2"',
        fix="lower requests.cpu",
    )


@KINDS
def test_zero_request_fails(kind: str) -> None:
    entry = container("extra")
    entry["resources"]["requests"]["memory"] = "0"
    messages = check_resource(hygiene.container_resources, *with_container(kind, "containers", entry))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, 'containers')}.resources.requests.memory",
        found='"0"',
    )


@KINDS
def test_numeric_quantities_and_ephemeral_containers_pass(kind: str) -> None:
    entry = container("extra")
    entry["resources"] = {"requests": {"cpu": 0.5, "memory": "128M"}, "limits": {"cpu": 1, "memory": "1e9"}}
    spec = pod_spec(kind)
    spec["containers"].append(entry)
    spec["ephemeralContainers"] = [container("debug", "ephemeralContainers")]
    assert check_resource(hygiene.container_resources, *workload(kind, spec), config={"requireCpuLimit": True}) == []


# --- probes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", LONG_RUNNING_KINDS)
@pytest.mark.parametrize("probe", ["readinessProbe", "livenessProbe"])
def test_missing_probe_fails(kind: str, probe: str) -> None:
    entry = container("extra")
    del entry[probe]
    messages = check_resource(hygiene.container_probes, *with_container(kind, "containers", entry))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, 'containers')}.{probe}",
        found="<unset>",
        fix=f"add a {probe}",
    )


@pytest.mark.parametrize("kind", LONG_RUNNING_KINDS)
def test_identical_liveness_and_readiness_fail(kind: str) -> None:
    entry = container("extra")
    entry["livenessProbe"] = {"httpGet": {"path": "/health/readiness", "port": "http"}, "periodSeconds": 20}
    messages = check_resource(hygiene.container_probes, *with_container(kind, "containers", entry))
    message = assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, 'containers')}.livenessProbe",
        fix="separate endpoint",
    )
    assert "/health/readiness" in message


@pytest.mark.parametrize("kind", LONG_RUNNING_KINDS)
def test_native_sidecar_needs_probes(kind: str) -> None:
    sidecar = container("proxy", "initContainers", restartPolicy="Always")
    messages = check_resource(hygiene.container_probes, *with_container(kind, "initContainers", sidecar))
    assert len(messages) == 2
    assert_finding(
        messages, subject=subject_label(kind), path=f"{cpath(kind, 'initContainers', 'proxy')}.readinessProbe"
    )


@pytest.mark.parametrize("kind", ["Job", "CronJob"])
def test_jobs_are_exempt_from_probes(kind: str) -> None:
    spec = pod_spec(kind)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        del spec["containers"][0][probe]
    assert check_resource(hygiene.container_probes, *workload(kind, spec)) == []


@pytest.mark.parametrize("kind", LONG_RUNNING_KINDS)
def test_init_and_ephemeral_containers_need_no_probes(kind: str) -> None:
    spec = pod_spec(kind)
    spec["initContainers"] = [container("migrate", "initContainers")]
    spec["ephemeralContainers"] = [container("debug", "ephemeralContainers")]
    assert check_resource(hygiene.container_probes, *workload(kind, spec)) == []


def test_run_to_completion_pod_needs_no_probes() -> None:
    spec = pod_spec("Pod")
    spec["restartPolicy"] = "Never"
    del spec["containers"][0]["livenessProbe"]
    assert check_resource(hygiene.container_probes, *workload("Pod", spec)) == []


# --- images ---------------------------------------------------------------------------------


@KINDS
@LISTS
@pytest.mark.parametrize(
    "image", ["registry.example.com/support/api:latest", "registry.example.com:5000/support/api", "nginx"]
)
def test_latest_or_implicit_tag_fails(kind: str, list_name: str, image: str) -> None:
    entry = container("extra", list_name, image=image)
    messages = check_resource(hygiene.image_tag_pinned, *with_container(kind, list_name, entry))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.image",
        found=f'"{image}"',
        fix="explicit version tag",
    )


@KINDS
@LISTS
def test_digest_required_where_configured(kind: str, list_name: str) -> None:
    entry = container("extra", list_name, image="registry.example.com/support/api:1.4.2")
    props = with_container(kind, list_name, entry)
    assert check_resource(hygiene.image_tag_pinned, *props) == []
    messages = check_resource(hygiene.image_tag_pinned, *props, config={"requireDigest": True})
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.image",
        found='"registry.example.com/support/api:1.4.2"',
        fix="@sha256:",
    )


@KINDS
def test_malformed_digest_fails(kind: str) -> None:
    entry = container("extra", image="registry.example.com/api@sha256:abc")
    messages = check_resource(hygiene.image_tag_pinned, *with_container(kind, "containers", entry))
    assert_finding(
        messages, subject=subject_label(kind), path=f"{cpath(kind, 'containers')}.image", fix="64 hex digits"
    )


@KINDS
def test_digest_pinned_image_passes_everywhere(kind: str) -> None:
    spec = pod_spec(kind)
    spec["initContainers"] = [container("init", "initContainers")]
    spec["ephemeralContainers"] = [container("debug", "ephemeralContainers")]
    assert check_resource(hygiene.image_tag_pinned, *workload(kind, spec), config={"requireDigest": True}) == []


def test_parse_image() -> None:
    ref = hygiene.parse_image("registry:5000/team/app:1.2@sha256:" + "a" * 64)
    assert (ref.repository, ref.tag, ref.digest) == ("registry:5000/team/app", "1.2", "sha256:" + "a" * 64)
    assert hygiene.parse_image("registry:5000/team/app").tag is None


# --- read-only root filesystem --------------------------------------------------------------


@KINDS
@LISTS
@pytest.mark.parametrize(("value", "found"), [(False, "false"), (None, "<unset>")])
def test_writable_root_filesystem_fails(kind: str, list_name: str, value: bool | None, found: str) -> None:
    entry = container("extra", list_name)
    if value is None:
        del entry["securityContext"]["readOnlyRootFilesystem"]
    else:
        entry["securityContext"]["readOnlyRootFilesystem"] = value
    props = with_container(kind, list_name, entry)
    messages = check_resource(hygiene.read_only_root_filesystem, *props)
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{cpath(kind, list_name)}.securityContext.readOnlyRootFilesystem",
        found=found,
        fix="emptyDir",
    )
    assert (
        check_resource(hygiene.read_only_root_filesystem, *props, config={"requireReadOnlyRootFilesystem": False}) == []
    )


@KINDS
def test_read_only_root_filesystem_passes(kind: str) -> None:
    assert check_resource(hygiene.read_only_root_filesystem, *workload(kind)) == []


# --- service accounts -----------------------------------------------------------------------


@KINDS
@pytest.mark.parametrize(("value", "found"), [(None, "<unset>"), ("default", '"default"'), ("", '""')])
def test_default_service_account_fails(kind: str, value: str | None, found: str) -> None:
    spec = pod_spec(kind)
    if value is None:
        del spec["serviceAccountName"]
    else:
        spec["serviceAccountName"] = value
    messages = check_resource(hygiene.dedicated_service_account, *workload(kind, spec))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{POD_SPEC_PATHS[kind]}.serviceAccountName",
        found=found,
        fix="create a ServiceAccount",
    )


@KINDS
def test_dedicated_service_account_passes(kind: str) -> None:
    assert check_resource(hygiene.dedicated_service_account, *workload(kind)) == []
    spec = pod_spec(kind)
    spec["serviceAccount"] = spec.pop("serviceAccountName")
    assert check_resource(hygiene.dedicated_service_account, *workload(kind, spec)) == []


@KINDS
@pytest.mark.parametrize(("value", "found"), [(None, "<unset>"), (True, "true")])
def test_token_automount_fails(kind: str, value: bool | None, found: str) -> None:
    spec = pod_spec(kind)
    if value is None:
        del spec["automountServiceAccountToken"]
    else:
        spec["automountServiceAccountToken"] = value
    messages = check_resource(hygiene.no_service_account_token_automount, *workload(kind, spec))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{POD_SPEC_PATHS[kind]}.automountServiceAccountToken",
        found=found,
        fix="support-platform.io/needs-kubernetes-api",
    )


@KINDS
def test_token_automount_allowed_when_declared(kind: str) -> None:
    spec = pod_spec(kind)
    spec["automountServiceAccountToken"] = True
    resource_type, props = workload(kind, spec)
    props["metadata"]["annotations"] = {"support-platform.io/needs-kubernetes-api": "leader election"}
    assert check_resource(hygiene.no_service_account_token_automount, resource_type, props) == []


@pytest.mark.parametrize("kind", CONTROLLER_KINDS)
def test_token_automount_declared_on_the_pod_template(kind: str) -> None:
    spec = pod_spec(kind)
    del spec["automountServiceAccountToken"]
    resource_type, props = workload(kind, spec)
    pod_metadata_of(kind, props)["annotations"] = {"support-platform.io/needs-kubernetes-api": "watches pods"}
    assert check_resource(hygiene.no_service_account_token_automount, resource_type, props) == []


def test_service_account_automount_fails_and_passes() -> None:
    resource_type, props = simple("ServiceAccount")
    messages = check_resource(hygiene.no_service_account_token_automount, resource_type, props)
    assert_finding(
        messages,
        subject=f'{TYPES["ServiceAccount"]} "api"',
        path="automountServiceAccountToken",
        found="<unset>",
        fix="automountServiceAccountToken: false",
    )
    props["automountServiceAccountToken"] = False
    assert check_resource(hygiene.no_service_account_token_automount, resource_type, props) == []
    props["automountServiceAccountToken"] = True
    props["metadata"]["annotations"] = {"support-platform.io/needs-kubernetes-api": "operator"}
    assert check_resource(hygiene.no_service_account_token_automount, resource_type, props) == []


# --- namespace ------------------------------------------------------------------------------

NAMESPACED = [
    *WORKLOAD_KINDS,
    "Service",
    "ServiceAccount",
    "ConfigMap",
    "PersistentVolumeClaim",
    "NetworkPolicy",
    "Ingress",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "Gateway",
    "HTTPRoute",
]


@pytest.mark.parametrize("kind", NAMESPACED)
@pytest.mark.parametrize(("namespace", "found"), [(None, "<unset>"), ("default", '"default"')])
def test_default_namespace_fails(kind: str, namespace: str | None, found: str) -> None:
    if kind in WORKLOAD_KINDS:
        resource_type, props = workload(kind, namespace=namespace)
    else:
        resource_type, props = simple(kind, namespace=namespace)
    messages = check_resource(hygiene.no_default_namespace, resource_type, props)
    assert_finding(
        messages,
        subject=f'{resource_type} "api"',
        path="metadata.namespace",
        found=found,
        fix="set metadata.namespace",
    )


@pytest.mark.parametrize("kind", NAMESPACED)
def test_explicit_namespace_passes(kind: str) -> None:
    props = workload(kind) if kind in WORKLOAD_KINDS else simple(kind)
    assert check_resource(hygiene.no_default_namespace, *props) == []


@pytest.mark.parametrize(
    "resource_type",
    [
        "kubernetes:core/v1:Namespace",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
        "kubernetes:cert-manager.io/v1:ClusterIssuer",
        "kubernetes:gateway.networking.k8s.io/v1:GatewayClass",
        "kubernetes:storage.k8s.io/v1:StorageClass",
    ],
)
def test_cluster_scoped_objects_need_no_namespace(resource_type: str) -> None:
    props = {"metadata": metadata("support", namespace=None)}
    assert check_resource(hygiene.no_default_namespace, resource_type, props) == []


def test_managing_the_default_namespace_fails() -> None:
    messages = check_resource(
        hygiene.no_default_namespace, TYPES["Namespace"], {"metadata": metadata("default", namespace=None)}
    )
    assert_finding(messages, subject=f'{TYPES["Namespace"]} "api"', path="metadata.name", found='"default"')


# --- labels ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [*WORKLOAD_KINDS, "Service", "ConfigMap", "HTTPRoute"])
def test_missing_recommended_label_fails(kind: str) -> None:
    resource_type, props = workload(kind) if kind in WORKLOAD_KINDS else simple(kind)
    del props["metadata"]["labels"]["app.kubernetes.io/component"]
    messages = check_resource(hygiene.recommended_labels, resource_type, props)
    assert_finding(
        messages,
        subject=f'{resource_type} "api"',
        path='metadata.labels["app.kubernetes.io/component"]',
        found="<unset>",
        fix="set app.kubernetes.io/component",
    )


@pytest.mark.parametrize("kind", CONTROLLER_KINDS)
def test_pod_template_needs_the_labels_too(kind: str) -> None:
    resource_type, props = workload(kind, template_labels={"app.kubernetes.io/name": "api"})
    messages = check_resource(hygiene.recommended_labels, resource_type, props)
    assert len(messages) == 5
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f'{pod_metadata_path(kind)}.labels["app.kubernetes.io/version"]',
        found="<unset>",
    )


def test_fixed_label_values_are_checked_and_configurable() -> None:
    resource_type, props = simple("ConfigMap")
    props["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "Helm"
    messages = check_resource(hygiene.recommended_labels, resource_type, props)
    assert_finding(
        messages,
        subject=f'{resource_type} "api"',
        path='metadata.labels["app.kubernetes.io/managed-by"]',
        found='"Helm"',
        fix="set app.kubernetes.io/managed-by to pulumi",
    )
    relaxed = {"expectedValues": {"app.kubernetes.io/part-of": "support-platform"}}
    assert check_resource(hygiene.recommended_labels, resource_type, props, config=relaxed) == []


@KINDS
def test_labelled_objects_pass(kind: str) -> None:
    assert check_resource(hygiene.recommended_labels, *workload(kind)) == []


# --- bare pods and API versions -------------------------------------------------------------


def test_bare_pod_fails() -> None:
    messages = check_resource(hygiene.no_bare_pods, *workload("Pod"))
    assert_finding(messages, subject=subject_label("Pod"), path="kind", found='"Pod"', fix="Deployment")


@pytest.mark.parametrize("kind", CONTROLLER_KINDS)
def test_controllers_pass(kind: str) -> None:
    assert check_resource(hygiene.no_bare_pods, *workload(kind)) == []


@pytest.mark.parametrize(
    ("resource_type", "found", "fix"),
    [
        ("kubernetes:apps/v1beta1:Deployment", "apps/v1beta1", "apps/v1"),
        ("kubernetes:extensions/v1beta1:Ingress", "extensions/v1beta1", "networking.k8s.io/v1"),
        ("kubernetes:policy/v1beta1:PodDisruptionBudget", "policy/v1beta1", "policy/v1"),
        ("kubernetes:batch/v1beta1:CronJob", "batch/v1beta1", "batch/v1"),
        ("kubernetes:autoscaling/v2beta2:HorizontalPodAutoscaler", "autoscaling/v2beta2", "autoscaling/v2"),
        (
            "kubernetes:gateway.networking.k8s.io/v1beta1:HTTPRoute",
            "gateway.networking.k8s.io/v1beta1",
            "gateway.networking.k8s.io/v1",
        ),
        (
            "kubernetes:flowcontrol.apiserver.k8s.io/v1alpha1:FlowSchema",
            "flowcontrol.apiserver.k8s.io/v1alpha1",
            "flowcontrol.apiserver.k8s.io/v1",
        ),
        ("kubernetes:example.com/v2alpha3:Widget", "example.com/v2alpha3", "GA"),
    ],
)
def test_pre_release_api_fails(resource_type: str, found: str, fix: str) -> None:
    messages = check_resource(hygiene.stable_api_versions, resource_type, {"metadata": metadata()})
    assert_finding(messages, subject=f'{resource_type} "api"', path="apiVersion", found=f'"{found}"', fix=fix)


@pytest.mark.parametrize(
    "resource_type",
    [
        *[TYPES[k] for k in WORKLOAD_KINDS],
        "kubernetes:cert-manager.io/v1:Certificate",
        "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
        "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
        "kubernetes:helm.sh/v4:Chart",
        "kubernetes:yaml/v2:ConfigGroup",
        "pulumi:providers:kubernetes",
    ],
)
def test_stable_apis_pass(resource_type: str) -> None:
    assert check_resource(hygiene.stable_api_versions, resource_type, {"metadata": metadata()}) == []
