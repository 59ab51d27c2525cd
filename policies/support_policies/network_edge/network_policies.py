"""Network policies and Services: default deny in every namespace, an allow policy for every workload,
no Service reachable from outside the edge.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from ..framework import (
    ALLOW_PUBLIC_SERVICE_ANNOTATION,
    Finding,
    Settings,
    Subject,
    known_or_skip,
    resource_policy,
    stack_policy,
)
from ..k8s import annotations_of, as_mapping, as_sequence, as_str, selector_is_empty, selector_matches, to_plain
from ..pod_specs import PodTemplate, pod_template

_TAGS = ("network-edge",)
DIRECTIONS = ("Ingress", "Egress")


def default_deny_directions(props: Mapping[str, Any]) -> set[str]:
    """Directions a NetworkPolicy denies for every pod: empty podSelector and no rules."""
    spec = as_mapping(props.get("spec"))
    if not selector_is_empty(spec.get("podSelector")):
        return set()
    types = _policy_types(spec)
    return {d for d in DIRECTIONS if d in types and not as_sequence(spec.get(d.lower()))}


def _policy_types(spec: Mapping[str, Any]) -> set[str]:
    types = {t for t in as_sequence(spec.get("policyTypes")) if isinstance(t, str)}
    if not types:
        # The API defaults policyTypes to Ingress, plus Egress when egress rules exist.
        types = {"Ingress"} | ({"Egress"} if spec.get("egress") is not None else set())
    return types


def check_default_deny(subjects: Sequence[Subject], _: Settings) -> Iterator[tuple[Subject, Finding]]:
    denied: dict[str, set[str]] = defaultdict(set)
    for subject in subjects:
        if subject.kind == "NetworkPolicy":
            denied[subject.namespace] |= default_deny_directions(subject.props)
    yield from _created_namespaces_deny(subjects, denied)
    yield from _foreign_workloads_restricted(subjects, denied)


def _created_namespaces_deny(
    subjects: Sequence[Subject], denied: Mapping[str, set[str]]
) -> Iterator[tuple[Subject, Finding]]:
    namespaces = known_or_skip(subjects, lambda s: (s, s.object_name) if s.kind == "Namespace" else None)
    for namespace, name in namespaces:
        if name is None:
            yield (
                namespace,
                Finding(
                    "metadata.name",
                    None,
                    "without a literal name no NetworkPolicy can be matched to this namespace",
                    "give the Namespace an explicit metadata.name",
                ),
            )
            continue
        missing = [d for d in DIRECTIONS if d not in denied[name]]
        if missing:
            yield (
                namespace,
                Finding(
                    f'default-deny policyTypes of NetworkPolicies in namespace "{name}"',
                    sorted(denied[name]) or None,
                    f"{' and '.join(missing)} traffic is allowed by default in this namespace",
                    f'add a NetworkPolicy in namespace "{name}" with podSelector {{}}, '
                    "policyTypes [Ingress, Egress] and no ingress or egress rules",
                ),
            )


# --- workloads in namespaces the stack does not create -----------------------------------------

_EVERY_ADDRESS = frozenset({"0.0.0.0/0", "::/0"})


def _allows_everything(rule: Mapping[str, Any], direction: str) -> bool:
    """A rule without ports that admits every peer: no peers at all, or an ipBlock of every address."""
    if as_sequence(rule.get("ports")):
        return False
    peers = [as_mapping(p) for p in as_sequence(rule.get("from" if direction == "Ingress" else "to"))]
    if not peers:
        return True
    return any(
        as_str(as_mapping(p.get("ipBlock")).get("cidr")) in _EVERY_ADDRESS
        and not as_sequence(as_mapping(p.get("ipBlock")).get("except"))
        for p in peers
    )


def restricted_directions(policies: Sequence[Mapping[str, Any]]) -> set[str]:
    """Directions the given NetworkPolicies (all selecting one pod) restrict: named in a policy's
    policyTypes, and no rule of any of them lets everything through (allowances add up)."""
    result = set()
    for direction in DIRECTIONS:
        specs = [as_mapping(p.get("spec")) for p in policies]
        if not any(direction in _policy_types(spec) for spec in specs):
            continue
        rules = [as_mapping(r) for spec in specs for r in as_sequence(spec.get(direction.lower()))]
        if not any(_allows_everything(rule, direction) for rule in rules):
            result.add(direction)
    return result


def _foreign_workloads_restricted(
    subjects: Sequence[Subject], denied: Mapping[str, set[str]]
) -> Iterator[tuple[Subject, Finding]]:
    """The default deny of a namespace the stack does not create is not visible to it, so each
    workload there must be restricted, in both directions, by NetworkPolicies of the stack."""
    created: set[str] = set()
    for subject in subjects:
        if subject.kind == "Namespace":
            try:
                name = subject.object_name
            except UnknownValueError:
                return  # which namespaces are foreign is unknown until the name is
            created.add(name or "")
    policies: dict[str, list[tuple[Any, Mapping[str, Any]]]] = defaultdict(list)
    for subject in subjects:
        if subject.kind == "NetworkPolicy":
            selector = to_plain(as_mapping(subject.props.get("spec")).get("podSelector"))
            policies[subject.namespace].append((selector, subject.props))
    for owner in known_or_skip(subjects, _pod_owner):
        if owner.namespace in created or denied.get(owner.namespace, set()) >= set(DIRECTIONS):
            continue
        selecting = [props for selector, props in policies[owner.namespace] if _selects(selector, owner.labels)]
        open_directions = [d for d in DIRECTIONS if d not in restricted_directions(selecting)]
        if open_directions:
            yield (
                owner.subject,
                Finding(
                    f"{owner.pod.metadata_path}.labels",
                    owner.labels or None,
                    f'namespace "{owner.namespace}" is not created by this stack, so no default deny of it is '
                    f"visible, and {' and '.join(open_directions)} traffic of these pods is not restricted by a "
                    "NetworkPolicy of the stack",
                    f'add a NetworkPolicy in namespace "{owner.namespace}" whose podSelector matches these labels, '
                    "with policyTypes [Ingress, Egress] and only the connections the workload needs (or a "
                    "default-deny policy for the namespace in this stack)",
                ),
            )


def _selects(selector: Any, labels: Mapping[str, Any]) -> bool:
    return selector_is_empty(selector) or selector_matches(selector, labels)


@dataclass(frozen=True)
class _PodOwner:
    subject: Subject
    pod: PodTemplate
    namespace: str
    labels: Mapping[str, Any]


def _pod_owner(subject: Subject) -> _PodOwner | None:
    pod = pod_template(subject.resource_type, subject.props)
    if pod is None:
        return None
    return _PodOwner(subject, pod, subject.namespace, to_plain(pod.labels))


def check_network_policy_coverage(subjects: Sequence[Subject], _: Settings) -> Iterator[tuple[Subject, Finding]]:
    # Namespace-wide policies (empty podSelector) are shared plumbing such as default deny or DNS
    # egress; they say nothing about this workload's own connections, so they do not count.
    selectors: dict[str, list[Any]] = defaultdict(list)
    for subject in subjects:
        if subject.kind != "NetworkPolicy":
            continue
        selector = as_mapping(subject.props.get("spec")).get("podSelector")
        if isinstance(selector, Mapping) and not selector_is_empty(selector):
            selectors[subject.namespace].append(to_plain(selector))
    for owner in known_or_skip(subjects, _pod_owner):
        if not any(selector_matches(sel, owner.labels) for sel in selectors[owner.namespace]):
            yield (
                owner.subject,
                Finding(
                    f"{owner.pod.metadata_path}.labels",
                    owner.labels or None,
                    f'no NetworkPolicy in namespace "{owner.namespace}" selects these pods, so '
                    "their allowed connections are undeclared",
                    "add a NetworkPolicy whose podSelector matches these labels and allows exactly "
                    "the workload's declared connections",
                ),
            )


# --- public services ------------------------------------------------------------------------


def check_public_service(subject: Subject, _: Settings) -> Iterator[Finding]:
    if subject.kind != "Service":
        return
    reason = as_str(annotations_of(subject.metadata).get(ALLOW_PUBLIC_SERVICE_ANNOTATION))
    if reason and reason.strip():
        return
    spec = as_mapping(subject.props.get("spec"))
    fix = (
        "use type ClusterIP behind the edge (Gateway/Ingress), or annotate the Service with "
        f'"{ALLOW_PUBLIC_SERVICE_ANNOTATION}: <reason>"'
    )
    service_type = spec.get("type")
    if service_type in ("LoadBalancer", "NodePort"):
        yield Finding(
            "spec.type",
            service_type,
            "the Service is reachable from outside the cluster, bypassing the edge and its TLS",
            fix,
        )
    external_ips = as_sequence(spec.get("externalIPs"))
    if external_ips:
        yield Finding(
            "spec.externalIPs",
            external_ips,
            "externalIPs expose the Service on node addresses outside the edge",
            fix,
        )


default_deny_network_policy = stack_policy(
    name="default-deny-network-policy",
    description="Every namespace the program creates has a default-deny NetworkPolicy "
    "(empty podSelector, Ingress and Egress, no rules); a workload in a namespace it does not create "
    "is restricted in both directions by NetworkPolicies of the stack.",
    check=check_default_deny,
    severity=Severity.HIGH,
    tags=_TAGS,
)
network_policy_coverage = stack_policy(
    name="network-policy-coverage",
    description="Every workload's pods are selected by a workload-specific allow NetworkPolicy in their namespace.",
    check=check_network_policy_coverage,
    severity=Severity.HIGH,
    tags=_TAGS,
)
no_public_services = resource_policy(
    name="no-public-services",
    description="Services are not LoadBalancer, NodePort or externalIPs without the allow-public-service annotation.",
    check=check_public_service,
    severity=Severity.HIGH,
    tags=_TAGS,
)

POLICIES = (
    default_deny_network_policy,
    network_policy_coverage,
    no_public_services,
)
