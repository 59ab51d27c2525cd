"""RBAC rules: every grant the issue lists is refused; the program's own Roles and its opt-in
ClusterRole pass with the rights they use and nothing more."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from support_policies import rbac
from tests.harness import ProgramRun, run_program, stack_config

from .fixtures import assert_finding, check_resource, metadata
from .pack_config import read_config_file
from .runner import format_violations, mandatory, run_pack

RBAC = "kubernetes:rbac.authorization.k8s.io/v1"
TYPES = {kind: f"{RBAC}:{kind}" for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")}
REASON = "monitoring.kubeletVolumeStats: Prometheus reads every kubelet's volume stats"


def role(*rules: dict[str, Any], kind: str = "Role", **meta: Any) -> tuple[str, dict[str, Any]]:
    body = metadata("reader", None) if kind == "ClusterRole" else metadata("reader")
    body.update(meta)
    return TYPES[kind], {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": body,
        "rules": list(rules),
    }


def rule(resources: list[str], verbs: list[str], groups: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"apiGroups": groups if groups is not None else [""], "resources": resources, "verbs": verbs, **extra}


def binding(
    role_kind: str, role_name: str, *, kind: str = "RoleBinding", subjects: Any = None
) -> tuple[str, dict[str, Any]]:
    body = metadata("reader", None) if kind == "ClusterRoleBinding" else metadata("reader")
    return TYPES[kind], {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": body,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": subjects or [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "support-monitoring"}],
    }


def label(resource_type: str, name: str = "api") -> str:
    return f'{resource_type} "{name}"'


# --- no admin bindings -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["RoleBinding", "ClusterRoleBinding"])
@pytest.mark.parametrize("admin", ["cluster-admin", "admin", "edit"])
def test_a_binding_to_a_built_in_admin_role_is_refused(kind: str, admin: str) -> None:
    resource_type, props = binding("ClusterRole", admin, kind=kind)
    messages = check_resource(rbac.rbac_no_admin_bindings, resource_type, props)
    assert_finding(messages, subject=label(resource_type), path="roleRef.name", found=f'"{admin}"', fix="bind a Role")


@pytest.mark.parametrize(
    ("kind", "name"),
    [("Group", "system:authenticated"), ("Group", "system:unauthenticated"), ("User", "system:anonymous")],
)
def test_a_binding_to_every_caller_is_refused(kind: str, name: str) -> None:
    resource_type, props = binding("Role", "reader", subjects=[{"kind": kind, "name": name}])
    messages = check_resource(rbac.rbac_no_admin_bindings, resource_type, props)
    assert_finding(messages, subject=label(resource_type), path="subjects[0]", fix="own ServiceAccount")


@pytest.mark.parametrize(
    ("role_kind", "name"),
    # A namespaced Role may be called "admin": it is judged by its own rules, not by its name.
    [("Role", "reader"), ("ClusterRole", "view"), ("Role", "admin")],
)
def test_bindings_to_other_roles_pass(role_kind: str, name: str) -> None:
    assert check_resource(rbac.rbac_no_admin_bindings, *binding(role_kind, name)) == []


# --- no wildcards ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (rule(["pods"], ["*"]), "verbs"),
        (rule(["*"], ["get"]), "resources"),
        (rule(["pods/*"], ["get"]), "resources"),
        (rule(["deployments"], ["list"], ["*"]), "apiGroups"),
    ],
)
@pytest.mark.parametrize("kind", ["Role", "ClusterRole"])
def test_wildcards_are_refused(entry: dict[str, Any], field: str, kind: str) -> None:
    resource_type, props = role(rule(["services"], ["get"]), entry, kind=kind)
    messages = check_resource(rbac.rbac_no_wildcards, resource_type, props)
    assert_finding(messages, subject=label(resource_type), path=f"rules[1].{field}", fix=f"list the {field}")


def test_an_aggregated_cluster_role_is_refused() -> None:
    resource_type, props = role(kind="ClusterRole")
    props["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate": "true"}}]}
    messages = check_resource(rbac.rbac_no_wildcards, resource_type, props)
    assert_finding(messages, subject=label(resource_type), path="aggregationRule", fix="in this ClusterRole itself")


# --- no escalation -----------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["escalate", "bind", "impersonate"])
def test_escalation_verbs_are_refused(verb: str) -> None:
    resource_type, props = role(rule(["roles"], ["get", verb], ["rbac.authorization.k8s.io"]))
    messages = check_resource(rbac.rbac_no_escalation, resource_type, props)
    assert_finding(messages, subject=label(resource_type), path="rules[0].verbs", found=f'["{verb}"]')


@pytest.mark.parametrize(
    "resource",
    ["pods/exec", "pods/attach", "pods/portforward", "pods/ephemeralcontainers", "serviceaccounts/token"],
)
@pytest.mark.parametrize("verb", ["create", "get"])
def test_sub_resources_that_reach_into_pods_are_refused(resource: str, verb: str) -> None:
    resource_type, props = role(rule(["pods", resource], [verb]))
    messages = check_resource(rbac.rbac_no_escalation, resource_type, props)
    assert_finding(messages, subject=label(resource_type), path="rules[0].resources", found=f'["{resource}"]')


# --- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["get", "list", "watch"])
def test_a_cluster_role_that_reads_secrets_is_refused(verb: str) -> None:
    resource_type, props = role(rule(["configmaps", "secrets"], [verb]), kind="ClusterRole")
    messages = check_resource(rbac.rbac_secret_reads, resource_type, props)
    assert_finding(messages, subject=label(resource_type), path="rules[0]", fix="use a Role in the one namespace")


def test_a_role_that_reads_secrets_needs_an_exemption_with_its_reason() -> None:
    resource_type, props = role(rule(["secrets"], ["get"], resourceNames=["tls-cert"]))
    messages = check_resource(rbac.rbac_secret_reads, resource_type, props, name="cert-reader")
    assert_finding(messages, subject=label(resource_type, "cert-reader"), path="rules[0]", fix="add an exemption")
    exempt = {"exemptions": [{"resource": "cert-reader", "reason": "reloads its own TLS certificate"}]}
    assert check_resource(rbac.rbac_secret_reads, resource_type, props, name="cert-reader", config=exempt) == []


@pytest.mark.parametrize(
    "entry",
    [
        rule(["secrets"], ["create", "update"]),  # writes are not reads
        rule(["secrets"], ["get"], ["external-secrets.io"]),  # another group's "secrets"
        rule(["configmaps"], ["get", "list", "watch"]),
    ],
)
def test_what_is_not_a_secret_read_passes(entry: dict[str, Any]) -> None:
    assert check_resource(rbac.rbac_secret_reads, *role(entry, kind="ClusterRole")) == []


# --- cluster scope -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ClusterRole", "ClusterRoleBinding"])
@pytest.mark.parametrize("annotations", [None, {}, {rbac.CLUSTER_SCOPE_ANNOTATION: "  "}])
def test_cluster_scope_without_a_reason_is_refused(kind: str, annotations: dict[str, str] | None) -> None:
    resource_type, props = (
        role(rule(["nodes"], ["list"]), kind=kind) if kind == "ClusterRole" else binding("ClusterRole", "x", kind=kind)
    )
    if annotations is not None:
        props["metadata"]["annotations"] = annotations
    messages = check_resource(rbac.rbac_cluster_scope, resource_type, props)
    assert_finding(
        messages,
        subject=label(resource_type),
        path=f'metadata.annotations["{rbac.CLUSTER_SCOPE_ANNOTATION}"]',
        fix="use a Role and RoleBinding",
    )


@pytest.mark.parametrize("kind", ["ClusterRole", "ClusterRoleBinding"])
def test_cluster_scope_with_its_reason_passes(kind: str) -> None:
    resource_type, props = (
        role(rule(["nodes"], ["list"]), kind=kind) if kind == "ClusterRole" else binding("ClusterRole", "x", kind=kind)
    )
    props["metadata"]["annotations"] = {rbac.CLUSTER_SCOPE_ANNOTATION: REASON}
    assert check_resource(rbac.rbac_cluster_scope, resource_type, props) == []


def test_namespaced_rbac_is_not_cluster_scope() -> None:
    assert check_resource(rbac.rbac_cluster_scope, *role(rule(["pods"], ["list"]))) == []
    assert check_resource(rbac.rbac_cluster_scope, *binding("ClusterRole", "view")) == []


def test_non_rbac_objects_are_ignored() -> None:
    props = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata("x"), "rules": [rule(["*"], ["*"])]}
    for policy in rbac.POLICIES:
        assert check_resource(policy, "kubernetes:core/v1:ConfigMap", props) == []
    # A CRD of another group that happens to be called Role is not RBAC.
    crd = dict(props, kind="Role", apiVersion="example.com/v1")
    assert check_resource(rbac.rbac_no_wildcards, "kubernetes:example.com/v1:Role", crd) == []


# --- the program's own RBAC, with every opt-in that adds some ----------------------------------


@functools.cache
def with_every_rbac_opt_in(stack: str) -> ProgramRun:
    overrides = {
        "monitoring": {"kubeletVolumeStats": True},
        "data": {"chroma": {"snapshots": {"volumeSnapshotClass": "csi-snapshots"}}},
    }
    config, secret_keys = stack_config(stack, overrides=overrides)
    run = run_program(stack, config, secret_keys)
    assert run.error is None, run.error
    return run


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_the_program_s_own_rbac_passes_every_stack(stack: str) -> None:
    run = with_every_rbac_opt_in(stack)
    kinds = {r.kind for r in run.resources if r.type.startswith(RBAC)}
    assert kinds == {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    violations = run_pack(run.resources, stack)
    assert mandatory(violations) == [], format_violations(violations)


def test_the_program_s_roles_keep_least_privilege() -> None:
    """What each Role grants, exactly: a new verb or resource shows up here for review."""
    grants = {
        (r.inputs["metadata"]["name"], rule_["apiGroups"][0], tuple(rule_["resources"]), tuple(rule_["verbs"]))
        for r in with_every_rbac_opt_in("production").resources
        if r.kind in ("Role", "ClusterRole") and r.type.startswith(RBAC)
        for rule_ in r.inputs["rules"]
    }
    assert grants == {
        ("prometheus-discovery", "", ("pods", "services"), ("get", "list", "watch")),
        ("prometheus-discovery", "discovery.k8s.io", ("endpointslices",), ("get", "list", "watch")),
        ("kube-state-metrics", "", ("pods", "persistentvolumeclaims"), ("list", "watch")),
        ("kube-state-metrics", "apps", ("deployments", "statefulsets"), ("list", "watch")),
        ("kube-state-metrics", "batch", ("cronjobs", "jobs"), ("list", "watch")),
        ("chroma-snapshot", "snapshot.storage.k8s.io", ("volumesnapshots",), ("create", "delete", "get", "list")),
        ("support-monitoring-prometheus-kubelet", "", ("nodes",), ("list", "watch")),
        ("support-monitoring-prometheus-kubelet", "", ("nodes/proxy",), ("get",)),
    }


# --- every grant of the issue, added to the real production stack, is refused ----------------------

ISSUE_OBJECTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "cluster-admin-binding": (
        *binding("ClusterRole", "cluster-admin", kind="ClusterRoleBinding"),
        "rbac-no-admin-bindings",
    ),
    "wildcard-verbs": (*role(rule(["pods"], ["*"])), "rbac-no-wildcards"),
    "cluster-wide-secret-reads": (
        *role(rule(["secrets"], ["get", "list", "watch"]), kind="ClusterRole"),
        "rbac-secret-reads",
    ),
    "pods-exec": (*role(rule(["pods/exec"], ["create"])), "rbac-no-escalation"),
    "escalate-bind": (
        *role(rule(["roles"], ["escalate", "bind"], ["rbac.authorization.k8s.io"])),
        "rbac-no-escalation",
    ),
}


@pytest.mark.parametrize("case", list(ISSUE_OBJECTS))
def test_each_grant_of_the_issue_is_refused_on_production(case: str) -> None:
    resource_type, props, policy = ISSUE_OBJECTS[case]
    records = list(with_every_rbac_opt_in("production").resources)
    base = records[0]
    extra = type(base)(
        type=resource_type,
        name=case,
        urn=base.urn.rsplit("::", 2)[0] + f"::{resource_type}::{case}",
        inputs=props,
        secret_paths=set(),
        protect=False,
        retain_on_delete=False,
        provider=next(r.provider for r in records if r.provider),
        parent=None,
        custom=True,
    )
    caught = [v for v in mandatory(run_pack([*records, extra], "production")) if v.resource == case]
    assert policy in {v.policy for v in caught}, format_violations(caught)


def test_rbac_is_mandatory_on_staging_and_production() -> None:
    for stack in ("staging", "production"):
        config = read_config_file(stack)
        assert all(config[p.name]["enforcementLevel"] == "mandatory" for p in rbac.POLICIES), stack
