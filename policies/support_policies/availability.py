"""Availability (stack policies): disruption budgets, autoscaling and replica spreading.

These rules relate resources to each other (a PDB to the pods it selects, an HPA to its target),
so they run on the whole stack. A workload counts as replicated when spec.replicas > 1 (an omitted
replicas means 1) or when an HPA targets it.

Stack policies judge the program's declarations, but after an `up` they see the resources' outputs:
the live objects, with whatever the API server and controllers filled in. The one field where that
matters here is spec.replicas, which the API server defaults to 1 (and an HPA then rewrites) on a
workload that leaves it out. `declared_replicas` tells a written value from a filled-in one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import Severity

from .framework import Finding, Setting, Settings, Subject, known_or_skip, stack_policy
from .k8s import (
    REPLICATED_KINDS,
    api_group,
    as_mapping,
    as_number,
    as_sequence,
    as_str,
    int_or_percent,
    metadata,
    parse_type,
    selector_matches,
    to_plain,
)
from .pod_specs import PodTemplate, pod_template

_TAGS = ("availability",)


@dataclass(frozen=True)
class Workload:
    subject: Subject
    kind: str
    group: str
    namespace: str
    name: str
    replicas: float | None  # spec.replicas as declared; None when omitted (see declared_replicas)
    labels: Mapping[str, Any]
    pod: PodTemplate

    @property
    def spec_replicas(self) -> float:
        return self.replicas if self.replicas is not None else 1.0


@dataclass(frozen=True)
class Autoscaler:
    subject: Subject
    namespace: str
    target_kind: str | None
    target_name: str | None
    target_group: str | None  # None when scaleTargetRef has no apiVersion
    min_replicas: float  # the API default is 1

    def targets(self, workload: Workload) -> bool:
        return (
            workload.namespace == self.namespace
            and workload.kind == self.target_kind
            and workload.name == self.target_name
            and (self.target_group is None or self.target_group == workload.group)
        )


def _owns_replicas(entry: Any) -> bool:
    """A managedFields entry of a server-side apply (operation Apply) that owns spec.replicas."""
    fields = as_mapping(as_mapping(entry).get("fieldsV1"))
    return as_mapping(entry).get("operation") == "Apply" and "f:replicas" in as_mapping(fields.get("f:spec"))


def declared_replicas(props: Mapping[str, Any]) -> float | None:
    """spec.replicas as the program declared it; None when the program left it out.

    Inputs (previews, render mode, mocks) carry no metadata.managedFields: there spec.replicas is
    what was written. Outputs of a live object do carry them, and there the value counts only when
    an applier (the Kubernetes provider's server-side apply field manager, operation Apply) owns
    f:spec/f:replicas. A value the API server defaulted has no owner, and one the HPA controller or
    `kubectl scale` set is owned by an Update of the scale subresource: neither was declared.
    """
    replicas = as_number(as_mapping(props.get("spec")).get("replicas"))
    managed = as_sequence(metadata(props).get("managedFields"))
    if replicas is None or not managed:
        return replicas
    return replicas if any(_owns_replicas(entry) for entry in managed) else None


def workload(subject: Subject) -> Workload | None:
    kind = subject.kind
    if kind not in REPLICATED_KINDS:
        return None
    pod = pod_template(subject.resource_type, subject.props)
    token = parse_type(subject.resource_type)
    if pod is None or token is None:
        return None
    return Workload(
        subject,
        kind,
        token.group,
        subject.namespace,
        subject.object_name or subject.name,
        declared_replicas(subject.props),
        to_plain(pod.labels),
        pod,
    )


def autoscaler(subject: Subject) -> Autoscaler | None:
    if subject.kind != "HorizontalPodAutoscaler":
        return None
    spec = as_mapping(subject.props.get("spec"))
    ref = as_mapping(spec.get("scaleTargetRef"))
    api_version = as_str(ref.get("apiVersion"))
    min_replicas = as_number(spec.get("minReplicas"))
    return Autoscaler(
        subject,
        subject.namespace,
        as_str(ref.get("kind")),
        as_str(ref.get("name")),
        api_group(api_version) if api_version is not None else None,
        min_replicas if min_replicas is not None else 1.0,
    )


@dataclass(frozen=True)
class _Stack:
    workloads: list[Workload]
    autoscalers: list[Autoscaler]

    def owner(self, wl: Workload) -> Autoscaler | None:
        return next((hpa for hpa in self.autoscalers if hpa.targets(wl)), None)

    def replicated(self, wl: Workload) -> bool:
        return wl.spec_replicas > 1 or self.owner(wl) is not None

    def lowest_replicas(self, wl: Workload) -> float:
        """The fewest pods the workload runs: what a disruption budget must leave room in."""
        hpa = self.owner(wl)
        return hpa.min_replicas if hpa is not None else wl.spec_replicas


def _stack(subjects: Sequence[Subject]) -> _Stack:
    # Skipping an unknown workload or HPA only drops checks, so both may be skipped.
    return _Stack(list(known_or_skip(subjects, workload)), list(known_or_skip(subjects, autoscaler)))


def _budgets(subjects: Sequence[Subject]) -> list[tuple[Subject, Any]]:
    # Read without skipping: an unknown PDB could be the one covering a workload.
    return [
        (s, to_plain(as_mapping(s.props.get("spec")).get("selector")))
        for s in subjects
        if s.kind == "PodDisruptionBudget"
    ]


# --- disruption budgets ---------------------------------------------------------------------


def check_pdb_coverage(subjects: Sequence[Subject], _: Settings) -> Iterator[tuple[Subject, Finding]]:
    stack = _stack(subjects)
    budgets = _budgets(subjects)
    for wl in stack.workloads:
        if not stack.replicated(wl):
            continue
        covered = any(
            pdb.namespace == wl.namespace and selector_matches(selector, wl.labels) for pdb, selector in budgets
        )
        if not covered:
            yield (
                wl.subject,
                Finding(
                    f"{wl.pod.metadata_path}.labels",
                    wl.labels or None,
                    f'no PodDisruptionBudget in namespace "{wl.namespace}" selects these pods, so a '
                    "node drain may evict every replica at once",
                    "add a PodDisruptionBudget with maxUnavailable: 1 whose selector matches the pods' selector labels",
                ),
            )


@dataclass(frozen=True)
class _Budget:
    subject: Subject
    namespace: str
    max_unavailable: Any
    min_available: Any
    selector: Any


def _budget(subject: Subject) -> _Budget | None:
    if subject.kind != "PodDisruptionBudget":
        return None
    spec = to_plain(as_mapping(subject.props.get("spec")))
    return _Budget(
        subject, subject.namespace, spec.get("maxUnavailable"), spec.get("minAvailable"), spec.get("selector")
    )


def check_pdb_allows_disruption(subjects: Sequence[Subject], _: Settings) -> Iterator[tuple[Subject, Finding]]:
    stack = _stack(subjects)
    for pdb in known_or_skip(subjects, _budget):
        if pdb.max_unavailable is not None and (int_or_percent(pdb.max_unavailable, 100.0, round_up=True) == 0):
            yield (
                pdb.subject,
                Finding(
                    "spec.maxUnavailable",
                    pdb.max_unavailable,
                    "a budget of zero disruptions blocks every node drain and cluster upgrade",
                    "set maxUnavailable to 1 (or a non-zero percentage)",
                ),
            )
        if pdb.min_available is None:
            continue
        if pdb.min_available == "100%":
            yield (
                pdb.subject,
                Finding(
                    "spec.minAvailable",
                    pdb.min_available,
                    "requiring every pod to stay up blocks every node drain",
                    "use maxUnavailable: 1 instead",
                ),
            )
            continue
        for wl in stack.workloads:
            if wl.namespace != pdb.namespace or not selector_matches(pdb.selector, wl.labels):
                continue
            replicas = stack.lowest_replicas(wl)
            required = int_or_percent(pdb.min_available, replicas, round_up=True)
            if required is not None and required >= replicas:
                yield (
                    pdb.subject,
                    Finding(
                        "spec.minAvailable",
                        pdb.min_available,
                        f"{wl.subject.label} can run as few as {int(replicas)} replica(s), so this "
                        "budget allows no voluntary disruption and blocks node drains",
                        "use maxUnavailable: 1, or a minAvailable below the lowest replica count",
                    ),
                )


# --- autoscaling ----------------------------------------------------------------------------

MINIMUM_MIN_REPLICAS = Setting(
    "minimumMinReplicas",
    {
        "type": "integer",
        "minimum": 1,
        "default": 1,
        "description": "The lowest HPA minReplicas allowed (2 in staging and production).",
    },
)


def check_hpa(subjects: Sequence[Subject], settings: Settings) -> Iterator[tuple[Subject, Finding]]:
    stack = _stack(subjects)
    floor = settings.number(MINIMUM_MIN_REPLICAS.key)
    for hpa in stack.autoscalers:
        targets = [wl for wl in stack.workloads if hpa.targets(wl)]
        if not targets:
            yield (
                hpa.subject,
                Finding(
                    "spec.scaleTargetRef",
                    {"kind": hpa.target_kind, "name": hpa.target_name},
                    f'no such workload exists in namespace "{hpa.namespace}" of this stack',
                    "point scaleTargetRef at the Deployment or StatefulSet this program creates",
                ),
            )
        if hpa.min_replicas < floor:
            written = as_mapping(hpa.subject.props.get("spec")).get("minReplicas")
            yield (
                hpa.subject,
                Finding(
                    "spec.minReplicas",
                    written,
                    f"this stack needs at least {int(floor)} replicas at all times to survive the "
                    "loss of a pod or node",
                    f"set minReplicas to {int(floor)} or more",
                ),
            )
        for wl in targets:
            if wl.replicas is not None:
                yield (
                    wl.subject,
                    Finding(
                        "spec.replicas",
                        wl.replicas,
                        f"{hpa.subject.label} owns the replica count; every update resets it",
                        "omit spec.replicas on a workload scaled by an HPA",
                    ),
                )


# --- spreading ------------------------------------------------------------------------------


def _term_spreads(term: Any, own_labels: Mapping[str, Any]) -> bool:
    term_map = as_mapping(term)
    return bool(as_sequence(term_map.get("matchLabelKeys"))) or selector_matches(
        term_map.get("labelSelector"), own_labels
    )


def spreads(pod: PodTemplate, own_labels: Mapping[str, Any]) -> bool:
    """A spread constraint or anti-affinity term that actually selects the pod's own replicas."""
    if any(_term_spreads(c, own_labels) for c in as_sequence(pod.spec.get("topologySpreadConstraints"))):
        return True
    anti = as_mapping(as_mapping(pod.spec.get("affinity")).get("podAntiAffinity"))
    required = as_sequence(anti.get("requiredDuringSchedulingIgnoredDuringExecution"))
    preferred = [
        as_mapping(p).get("podAffinityTerm")
        for p in as_sequence(anti.get("preferredDuringSchedulingIgnoredDuringExecution"))
    ]
    return any(_term_spreads(t, own_labels) for t in [*required, *preferred])


def check_spreading(subjects: Sequence[Subject], _: Settings) -> Iterator[tuple[Subject, Finding]]:
    stack = _stack(subjects)
    for wl in stack.workloads:
        if stack.replicated(wl) and not spreads(wl.pod, wl.labels):
            yield (
                wl.subject,
                Finding(
                    f"{wl.pod.path}.topologySpreadConstraints",
                    wl.pod.spec.get("topologySpreadConstraints"),
                    "nothing keeps the replicas apart, so one node or zone can take them all down",
                    "add topologySpreadConstraints over kubernetes.io/hostname and "
                    "topology.kubernetes.io/zone whose labelSelector matches the pod labels "
                    "(or podAntiAffinity)",
                ),
            )


pdb_coverage = stack_policy(
    name="pdb-coverage",
    description="Every workload with more than one replica or an HPA is selected by a PodDisruptionBudget.",
    check=check_pdb_coverage,
    severity=Severity.MEDIUM,
    tags=_TAGS,
)
pdb_allows_disruption = stack_policy(
    name="pdb-allows-disruption",
    description="No PodDisruptionBudget forbids every disruption (maxUnavailable 0, minAvailable "
    "100% or at least the replica count).",
    check=check_pdb_allows_disruption,
    severity=Severity.MEDIUM,
    tags=_TAGS,
)
hpa_sanity = stack_policy(
    name="hpa-sanity",
    description="HPAs target a workload in the stack, keep the stack's minimum replicas, and own "
    "the replica count alone.",
    check=check_hpa,
    severity=Severity.MEDIUM,
    tags=_TAGS,
    settings=(MINIMUM_MIN_REPLICAS,),
)
replica_spreading = stack_policy(
    name="replica-spreading",
    description="Replicated workloads spread their pods with topology spread constraints or pod anti-affinity.",
    check=check_spreading,
    severity=Severity.MEDIUM,
    tags=_TAGS,
)

POLICIES = (pdb_coverage, pdb_allows_disruption, hpa_sanity, replica_spreading)
