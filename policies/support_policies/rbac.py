"""RBAC: what the program's Roles, ClusterRoles and bindings may grant.

The program creates Roles for Prometheus' service discovery, kube-state-metrics and the Chroma
snapshot job, and one opt-in ClusterRole (the kubelets' volume stats). Each rule below refuses one
way a grant reaches beyond what a workload needs: the built-in admin roles, wildcards, the verbs and
sub-resources that lead to more rights, Secret reads, and cluster scope without a stated reason.

Wildcards are this pack's `rbac-no-wildcards` alone: the other rules read explicit names, so one
fault is reported once. Anchors: Kubernetes "RBAC good practices" (privilege escalation risks),
Kyverno `restrict-binding-clusteradmin`, `restrict-wildcard-verbs`, `restrict-wildcard-resources`,
`restrict-escalation-verbs-roles`, `restrict-secret-role-verbs`, checkov CKV_K8S_49, CKV_K8S_157,
CKV_K8S_158, CKV2_K8S_1/2/3/5.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import Severity

from .framework import ANNOTATION_PREFIX, Finding, Settings, Subject, Theme
from .k8s import annotations_of, as_mapping, as_sequence, as_str, parse_type

_THEME = Theme(("rbac",), Severity.HIGH)
RBAC_GROUP = "rbac.authorization.k8s.io"
CLUSTER_SCOPE_ANNOTATION = f"{ANNOTATION_PREFIX}/cluster-scope"

ROLE_KINDS = frozenset({"Role", "ClusterRole"})
BINDING_KINDS = frozenset({"RoleBinding", "ClusterRoleBinding"})
# The built-in user-facing roles: cluster-admin is everything; admin and edit include reading every
# Secret and exec into every pod of the namespace they are bound in.
ADMIN_ROLES = frozenset({"cluster-admin", "admin", "edit"})
# Groups every caller (or every workload) belongs to: a binding to one grants the role to all of them.
EVERYONE_GROUPS = frozenset({"system:authenticated", "system:unauthenticated", "system:serviceaccounts"})
EVERYONE_USERS = frozenset({"system:anonymous"})
# Verbs that grant more than the rule says: create roles with rights the caller lacks (escalate),
# bind any role (bind), act as another user or ServiceAccount (impersonate).
ESCALATION_VERBS = frozenset({"escalate", "bind", "impersonate"})
# Sub-resources that run commands in, or reach into, another pod, or mint another identity's token.
ESCALATION_RESOURCES = frozenset(
    {"pods/exec", "pods/attach", "pods/portforward", "pods/ephemeralcontainers", "serviceaccounts/token"}
)
READ_VERBS = frozenset({"get", "list", "watch"})


def _rbac_kind(subject: Subject, kinds: frozenset[str]) -> str | None:
    token = parse_type(subject.resource_type)
    if token is None or token.group != RBAC_GROUP or subject.kind not in kinds:
        return None
    return subject.kind


@dataclass(frozen=True)
class Rule:
    """One PolicyRule of a Role or ClusterRole, with its field path."""

    path: str
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...]


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in as_sequence(value) if isinstance(v, str))


def role_rules(props: Mapping[str, Any]) -> Iterator[Rule]:
    for index, entry in enumerate(as_sequence(props.get("rules"))):
        rule = as_mapping(entry)
        yield Rule(
            f"rules[{index}]",
            _strings(rule.get("apiGroups")),
            _strings(rule.get("resources")),
            _strings(rule.get("verbs")),
            _strings(rule.get("resourceNames")),
        )


# --- no admin bindings ---------------------------------------------------------------------


def check_admin_bindings(subject: Subject, _: Settings) -> Iterator[Finding]:
    if _rbac_kind(subject, BINDING_KINDS) is None:
        return
    role_ref = as_mapping(subject.props.get("roleRef"))
    name = as_str(role_ref.get("name"))
    if role_ref.get("kind") == "ClusterRole" and name in ADMIN_ROLES:
        yield Finding(
            "roleRef.name",
            name,
            f"the built-in {name} role grants far more than a workload needs (it includes reading "
            "Secrets and exec into pods)",
            "bind a Role that lists exactly the resources and verbs the workload uses",
        )
    for index, entry in enumerate(as_sequence(subject.props.get("subjects"))):
        member = as_mapping(entry)
        kind, member_name = as_str(member.get("kind")), as_str(member.get("name"))
        if (kind == "Group" and member_name in EVERYONE_GROUPS) or (kind == "User" and member_name in EVERYONE_USERS):
            yield Finding(
                f"subjects[{index}]",
                {"kind": kind, "name": member_name},
                "this subject stands for every caller or every workload of the cluster",
                "bind the workload's own ServiceAccount instead",
            )


# --- no wildcards --------------------------------------------------------------------------


def check_wildcards(subject: Subject, _: Settings) -> Iterator[Finding]:
    if _rbac_kind(subject, ROLE_KINDS) is None:
        return
    for rule in role_rules(subject.props):
        for field, values in (("apiGroups", rule.api_groups), ("resources", rule.resources), ("verbs", rule.verbs)):
            wild = [v for v in values if "*" in v]
            if wild:
                yield Finding(
                    f"{rule.path}.{field}",
                    wild,
                    "a wildcard grants every present and future value, including ones nobody reviewed",
                    f"list the {field} the workload uses, by name",
                )
    if subject.props.get("aggregationRule") is not None:
        yield Finding(
            "aggregationRule",
            "<label selector>",
            "an aggregated ClusterRole gets the rules of every ClusterRole whose labels match, now and later",
            "list the rules in this ClusterRole itself",
        )


# --- no escalation -------------------------------------------------------------------------


def check_escalation(subject: Subject, _: Settings) -> Iterator[Finding]:
    if _rbac_kind(subject, ROLE_KINDS) is None:
        return
    for rule in role_rules(subject.props):
        verbs = sorted(ESCALATION_VERBS.intersection(rule.verbs))
        if verbs:
            yield Finding(
                f"{rule.path}.verbs",
                verbs,
                "escalate, bind and impersonate let the holder grant itself rights it was not given",
                "remove these verbs; role bindings are the program's job, not a workload's",
            )
        resources = sorted(ESCALATION_RESOURCES.intersection(rule.resources))
        if resources:
            yield Finding(
                f"{rule.path}.resources",
                resources,
                "these sub-resources run commands in other pods, reach into them, or mint another identity's token",
                "remove them; debug with kubectl as a person, not with a workload's ServiceAccount",
            )


# --- secrets -------------------------------------------------------------------------------


def check_secret_reads(subject: Subject, _: Settings) -> Iterator[Finding]:
    kind = _rbac_kind(subject, ROLE_KINDS)
    if kind is None:
        return
    for rule in role_rules(subject.props):
        verbs = sorted(READ_VERBS.intersection(rule.verbs))
        if "" not in rule.api_groups or "secrets" not in rule.resources or not verbs:
            continue
        if kind == "ClusterRole":
            yield Finding(
                rule.path,
                {"resources": ["secrets"], "verbs": verbs},
                "a ClusterRole that reads Secrets reads them in every namespace it is bound in, in the "
                "whole cluster with a ClusterRoleBinding",
                "use a Role in the one namespace, limited by resourceNames",
            )
        else:
            yield Finding(
                rule.path,
                {"resources": ["secrets"], "verbs": verbs, "resourceNames": list(rule.resource_names)},
                "reading Secrets reads every credential of the namespace unless the stack says why",
                "limit the rule by resourceNames, and add an exemption for this Role with the reason to "
                "the stack's policies/config/<stack>.json",
            )


# --- cluster scope -------------------------------------------------------------------------


def check_cluster_scope(subject: Subject, _: Settings) -> Iterator[Finding]:
    kind = _rbac_kind(subject, frozenset({"ClusterRole", "ClusterRoleBinding"}))
    if kind is None:
        return
    # Only this annotation's value is read: others may be unknown during a preview.
    reason = as_str(annotations_of(subject.metadata).get(CLUSTER_SCOPE_ANNOTATION))
    if reason and reason.strip():
        return
    yield Finding(
        f'metadata.annotations["{CLUSTER_SCOPE_ANNOTATION}"]',
        reason,
        f"a {kind} grants rights in every namespace, including ones the platform does not own",
        "use a Role and RoleBinding in each namespace; where a setting needs cluster scope (nodes are "
        f'cluster-scoped), annotate the object with "{CLUSTER_SCOPE_ANNOTATION}: <setting>: <why>"',
    )


rbac_no_admin_bindings = _THEME.policy(
    "rbac-no-admin-bindings",
    "No RoleBinding or ClusterRoleBinding grants cluster-admin, admin or edit, or binds every user or workload.",
    check_admin_bindings,
    Severity.CRITICAL,
)
rbac_no_wildcards = _THEME.policy(
    "rbac-no-wildcards",
    "Roles and ClusterRoles name their apiGroups, resources and verbs: no wildcards, no aggregation.",
    check_wildcards,
)
rbac_no_escalation = _THEME.policy(
    "rbac-no-escalation",
    "Roles grant no escalate, bind or impersonate, and no pods/exec, attach, portforward, "
    "ephemeralcontainers or serviceaccounts/token.",
    check_escalation,
    Severity.CRITICAL,
)
rbac_secret_reads = _THEME.policy(
    "rbac-secret-reads",
    "No ClusterRole reads Secrets; a Role reads them only with an exemption that says why.",
    check_secret_reads,
)
rbac_cluster_scope = _THEME.policy(
    "rbac-cluster-scope",
    "ClusterRoles and ClusterRoleBindings only where a setting asks for them, with the reason in an annotation.",
    check_cluster_scope,
)

POLICIES = (
    rbac_no_admin_bindings,
    rbac_no_wildcards,
    rbac_no_escalation,
    rbac_secret_reads,
    rbac_cluster_scope,
)
