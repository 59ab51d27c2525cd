"""What a plan costs the cluster: CPU and memory requests and limits times replicas, and storage,
before and after, from the plan's own old and new inputs (no cluster is asked).

Per workload, a pod's amounts are what the scheduler reserves for it: the sum of its containers and
restartable (sidecar) init containers, or the largest regular init container with the sidecars
started before it when that is more, plus the pod overhead. A container without a request gets its
limit as request (Kubernetes' default); one without a limit makes the pod's limit unbounded.

Replicas: a Deployment or StatefulSet that a HorizontalPodAutoscaler targets runs between the HPA's
minReplicas and maxReplicas; otherwise spec.replicas (1 when unset). A Job runs `parallelism` pods
(at most `completions`). A CronJob runs one Job at a time under `Forbid` or `Replace`; under `Allow`
as many as start within the Job's activeDeadlineSeconds (scripts/gate/cron.py). Storage is every
PersistentVolumeClaim's request plus each StatefulSet's volumeClaimTemplates times its replicas.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from scripts.gate import cron, quantity
from scripts.gate.plan import UNKNOWN, Step, lookup

WORKLOAD_KINDS = {
    "kubernetes:apps/v1:Deployment": "Deployment",
    "kubernetes:apps/v1:StatefulSet": "StatefulSet",
    "kubernetes:batch/v1:Job": "Job",
    "kubernetes:batch/v1:CronJob": "CronJob",
}
HPA_TYPES = ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "kubernetes:autoscaling/v1:HorizontalPodAutoscaler")
CLAIM_TYPE = "kubernetes:core/v1:PersistentVolumeClaim"
MEASURES = ("cpu_requests", "cpu_limits", "memory_requests", "memory_limits")
LABELS = {
    "cpu_requests": "CPU requests",
    "cpu_limits": "CPU limits",
    "memory_requests": "memory requests",
    "memory_limits": "memory limits",
    "storage": "persistent storage",
}

Amount = Fraction | None  # None: unbounded (a container without that limit)


@dataclass(frozen=True)
class Usage:
    cpu_requests: Amount = Fraction(0)
    cpu_limits: Amount = Fraction(0)
    memory_requests: Amount = Fraction(0)
    memory_limits: Amount = Fraction(0)

    def get(self, measure: str) -> Amount:
        value: Amount = getattr(self, measure)
        return value

    def combine(self, other: Usage, how: str) -> Usage:
        def one(a: Amount, b: Amount) -> Amount:
            if a is None or b is None:
                return None
            return a + b if how == "sum" else max(a, b)

        return Usage(*(one(self.get(m), other.get(m)) for m in MEASURES))

    def times(self, count: int) -> Usage:
        return Usage(*(None if (v := self.get(m)) is None else v * count for m in MEASURES))


@dataclass(frozen=True)
class Workload:
    kind: str
    namespace: str
    name: str
    pod: Usage
    replicas: tuple[int, int]  # at minimum, at the HPA maximum
    storage_per_replica: Fraction = Fraction(0)
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    @functools.cache  # noqa: B019 - frozen and small; a plan's summary asks for the same figures often
    def at(self, end: int) -> Usage:
        return self.pod.times(self.replicas[end])

    def storage(self, end: int) -> Fraction:
        return self.storage_per_replica * self.replicas[end]


@dataclass
class Capacity:
    """The workloads and standalone claims of one side of a plan, keyed by URN."""

    workloads: dict[str, Workload] = field(default_factory=dict)
    claims: dict[str, tuple[str, Fraction]] = field(default_factory=dict)
    _totals: dict[int, Usage] = field(default_factory=dict, repr=False, compare=False)

    def total(self, end: int) -> Usage:
        if end not in self._totals:  # built once, then only read
            result = Usage()
            for workload in self.workloads.values():
                result = result.combine(workload.at(end), "sum")
            self._totals[end] = result
        return self._totals[end]

    def storage(self, end: int) -> Fraction:
        return sum((w.storage(end) for w in self.workloads.values()), Fraction(0)) + sum(
            (size for _, size in self.claims.values()), Fraction(0)
        )


class _Notes:
    """Reads amounts and counts from inputs, noting what could not be read (shown under the table)."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)

    def amount(self, value: Any, what: str) -> Fraction:
        if value is None:
            return Fraction(0)
        if value == UNKNOWN:
            self.note(f"{what} is unknown until the update runs (counted as 0)")
            return Fraction(0)
        try:
            return quantity.parse(value)
        except quantity.QuantityError:
            self.note(f"{what} {value!r} is not a quantity (counted as 0)")
            return Fraction(0)

    def number(self, value: Any, what: str, default: int) -> int:
        if value is None:
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value) and value >= 0:
            return int(value)
        self.note(f"{what} {value!r} is unknown or not a count (counted as {default})")
        return default


def container_usage(container: Mapping[str, Any], notes: _Notes) -> Usage:
    name = container.get("name", "?")
    requests = lookup(container, "resources", "requests") or {}
    limits = lookup(container, "resources", "limits") or {}
    amounts: list[Amount] = []
    for resource in ("cpu", "memory"):
        limit = limits.get(resource)
        request = requests.get(resource, limit)  # Kubernetes defaults a missing request to the limit
        amounts.append(notes.amount(request, f"container {name} requests.{resource}"))
        amounts.append(None if limit is None else notes.amount(limit, f"container {name} limits.{resource}"))
    return Usage(*amounts)


def pod_usage(pod: Mapping[str, Any], notes: _Notes) -> Usage:
    running = Usage()
    for container in pod.get("containers") or []:
        running = running.combine(container_usage(container, notes), "sum")
    sidecars_so_far = Usage()
    init_peak = Usage()
    for container in pod.get("initContainers") or []:
        usage = container_usage(container, notes)
        if container.get("restartPolicy") == "Always":  # a sidecar: runs beside the app containers
            sidecars_so_far = sidecars_so_far.combine(usage, "sum")
        else:
            init_peak = init_peak.combine(usage.combine(sidecars_so_far, "sum"), "max")
    effective = running.combine(sidecars_so_far, "sum").combine(init_peak, "max")
    overhead = pod.get("overhead") or {}
    cpu = notes.amount(overhead.get("cpu"), "overhead.cpu")
    memory = notes.amount(overhead.get("memory"), "overhead.memory")
    return effective.combine(Usage(cpu, cpu, memory, memory), "sum")


def _job_pods(job_spec: Mapping[str, Any], notes: _Notes) -> int:
    if job_spec.get("suspend") is True:
        return 0
    parallelism = notes.number(job_spec.get("parallelism"), "parallelism", 1)
    completions = job_spec.get("completions")
    if completions is not None:
        parallelism = min(parallelism, notes.number(completions, "completions", parallelism))
    return parallelism


def cronjob_runs(spec: Mapping[str, Any], notes: _Notes) -> int:
    """How many of a CronJob's Jobs can run at once."""
    if spec.get("suspend") is True:
        return 0
    if spec.get("concurrencyPolicy", "Allow") in ("Forbid", "Replace"):
        return 1
    deadline = lookup(spec, "jobTemplate", "spec", "activeDeadlineSeconds")
    schedule = spec.get("schedule")
    if not isinstance(deadline, (int, float)) or not isinstance(schedule, str) or schedule == UNKNOWN:
        notes.note("concurrencyPolicy Allow without activeDeadlineSeconds: runs may overlap without bound (counted 1)")
        return 1
    try:
        interval = cron.min_interval_seconds(schedule)
    except cron.ScheduleError as error:
        notes.note(f"schedule {schedule!r}: {error} (counted 1)")
        return 1
    return max(1, math.ceil(Fraction(str(deadline)) / interval))


HpaTargets = dict[tuple[str, str, str], Mapping[str, Any]]  # (namespace, kind, name) -> HPA spec


def _scale_targets(inputs_by_urn: Mapping[str, Mapping[str, Any]], types: Mapping[str, str]) -> HpaTargets:
    targets: HpaTargets = {}
    for urn, inputs in inputs_by_urn.items():
        if types[urn] in HPA_TYPES:
            ref = lookup(inputs, "spec", "scaleTargetRef") or {}
            namespace = lookup(inputs, "metadata", "namespace") or "default"
            targets[(namespace, str(ref.get("kind")), str(ref.get("name")))] = inputs["spec"]
    return targets


def workload(resource_type: str, inputs: Mapping[str, Any], hpas: HpaTargets, urn_name: str) -> Workload:
    notes = _Notes()
    kind = WORKLOAD_KINDS[resource_type]
    namespace = str(lookup(inputs, "metadata", "namespace") or "default")
    name = lookup(inputs, "metadata", "name")
    name = urn_name if name in (None, UNKNOWN) else str(name)
    spec = inputs.get("spec") or {}
    storage = Fraction(0)
    if kind in ("Deployment", "StatefulSet"):
        pod = pod_usage(lookup(spec, "template", "spec") or {}, notes)
        hpa = hpas.get((namespace, kind, name))
        if hpa is not None:
            low = notes.number(hpa.get("minReplicas"), "HPA minReplicas", 1)
            replicas = (low, notes.number(hpa.get("maxReplicas"), "HPA maxReplicas", low))
        else:
            count = notes.number(spec.get("replicas"), "replicas", 1)
            replicas = (count, count)
        for template in spec.get("volumeClaimTemplates") or []:
            claim = lookup(template, "metadata", "name") or "?"
            storage += notes.amount(lookup(template, "spec", "resources", "requests", "storage"), f"claim {claim}")
    elif kind == "Job":
        pod = pod_usage(lookup(spec, "template", "spec") or {}, notes)
        replicas = (_job_pods(spec, notes),) * 2
    else:
        job = lookup(spec, "jobTemplate", "spec") or {}
        pod = pod_usage(lookup(job, "template", "spec") or {}, notes)
        replicas = (cronjob_runs(spec, notes) * _job_pods(job, notes),) * 2
    return Workload(kind, namespace, name, pod, replicas, storage, tuple(notes.notes))


def capacity(sides: list[tuple[str, str, Mapping[str, Any]]]) -> Capacity:
    """Capacity of (urn, type, inputs) triples: one side of a plan."""
    inputs_by_urn = {urn: inputs for urn, _, inputs in sides}
    types = {urn: resource_type for urn, resource_type, _ in sides}
    hpas = _scale_targets(inputs_by_urn, types)
    result = Capacity()
    for urn, inputs in inputs_by_urn.items():
        if types[urn] in WORKLOAD_KINDS:
            result.workloads[urn] = workload(types[urn], inputs, hpas, urn.rsplit("::", 1)[-1])
        elif types[urn] == CLAIM_TYPE:
            notes = _Notes()
            size = notes.amount(lookup(inputs, "spec", "resources", "requests", "storage"), "storage")
            where = f"{lookup(inputs, 'metadata', 'namespace')}/{lookup(inputs, 'metadata', 'name')}"
            label = f"PersistentVolumeClaim {where}"
            result.claims[urn] = (label, size)
    return result


def before_and_after(steps: Iterable[Step]) -> tuple[Capacity, Capacity]:
    """The stack's capacity before the plan (old inputs) and after it (new inputs)."""
    before: list[tuple[str, str, Mapping[str, Any]]] = []
    after: list[tuple[str, str, Mapping[str, Any]]] = []
    for step in steps:
        if (old := step.old_inputs) is not None:
            before.append((step.urn, step.type, old))
        if (new := step.new_inputs) is not None:
            after.append((step.urn, step.type, new))
    return capacity(before), capacity(after)
