"""Network policies and Services: default deny in every namespace, an allow policy for every workload,
no Service reachable from outside the edge.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import Severity

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
    types = {t for t in as_sequence(spec.get("policyTypes")) if isinstance(t, str)}
    if not types:
        # The API defaults policyTypes to Ingress, plus Egress when egress rules exist.
        types = {"Ingress"} | ({"Egress"} if spec.get("egress") is not None else set())
    return {d for d in DIRECTIONS if d in types and not as_sequence(spec.get(d.lower()))}


def check_default_deny(subjects: Sequence[Subject], _: Settings) -> Iterator[tuple[Subject, Finding]]:
    denied: dict[str, set[str]] = defaultdict(set)
    for subject in subjects:
        if subject.kind == "NetworkPolicy":
            denied[subject.namespace] |= default_deny_directions(subject.props)
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
    "(empty podSelector, Ingress and Egress, no rules).",
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
