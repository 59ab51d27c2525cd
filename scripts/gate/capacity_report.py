"""The capacity delta in Markdown, and the growth a pull request may add without a reviewer's label."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from scripts.gate import quantity
from scripts.gate.capacity import LABELS, MEASURES, Amount, Capacity, Workload

MIN, MAX = 0, 1
# Gate settings (scripts/gate/settings.yaml) and the total each one caps, at the HPA maximum.
GROWTH_LIMITS = {"maxCpuIncrease": "cpu_requests", "maxMemoryIncrease": "memory_requests"}
GROWTH_LIMITS |= {"maxStorageIncrease": "storage"}


def amount(measure: str, value: Amount) -> str:
    if value is None:
        return "unbounded"
    return quantity.cpu(value) if measure.startswith("cpu") else quantity.memory(value)


def change(measure: str, before: Amount, after: Amount) -> str:
    """`before → after (difference)`; a side that does not exist is `—`."""
    text = f"{amount(measure, before)} → {amount(measure, after)}"
    if before is None or after is None:
        return text
    return f"{text} ({quantity.signed(amount(measure, after - before))})" if after != before else text


def _side(workload: Workload | None, measure: str, end: int) -> Amount:
    if workload is None:
        return Fraction(0)
    return workload.storage(end) if measure == "storage" else workload.at(end).get(measure)


def _cell(before: Workload | None, after: Workload | None, measure: str) -> str:
    ends = [(_side(before, measure, e), _side(after, measure, e)) for e in (MIN, MAX)]
    if all(side == 0 for pair in ends for side in pair):
        return ""
    if ends[MIN] == ends[MAX]:
        return change(measure, *ends[MIN])
    return f"{change(measure, *ends[MIN])} at min<br>{change(measure, *ends[MAX])} at max"


def _replicas(workload: Workload | None) -> str:
    if workload is None:
        return "—"
    low, high = workload.replicas
    return str(low) if low == high else f"{low}-{high}"


def totals(before: Capacity, after: Capacity) -> list[str]:
    """The stack's totals, before → after, at minimum replicas and at the HPA maximum."""
    lines = ["| total | at minimum replicas | at the HPA maximum |", "|---|---|---|"]
    for measure in MEASURES:
        cells = [change(measure, before.total(e).get(measure), after.total(e).get(measure)) for e in (MIN, MAX)]
        unit = " (cores)" if measure.startswith("cpu") else ""
        lines.append(f"| {LABELS[measure]}{unit} | {cells[0]} | {cells[1]} |")
    storage = [change("storage", before.storage(e), after.storage(e)) for e in (MIN, MAX)]
    lines.append(f"| {LABELS['storage']} | {storage[0]} | {storage[1]} |")
    return lines


def _differs(before: Workload | None, after: Workload | None) -> bool:
    if before is None or after is None:
        return True
    return (before.pod, before.replicas, before.storage_per_replica) != (
        after.pod,
        after.replicas,
        after.storage_per_replica,
    )


def workload_rows(before: Capacity, after: Capacity) -> tuple[str, list[str]]:
    """The table header and one row per workload or claim whose capacity changes (created and
    deleted ones included), largest CPU-request change at the HPA maximum first."""
    header = (
        "| workload | replicas | CPU requests | CPU limits | memory requests | memory limits | storage |\n"
        "|---|---|---|---|---|---|---|"
    )
    rows: list[tuple[Fraction, str]] = []
    for urn in sorted(set(before.workloads) | set(after.workloads)):
        old, new = before.workloads.get(urn), after.workloads.get(urn)
        if not _differs(old, new):
            continue
        label = (new or old).label  # type: ignore[union-attr]
        cells = [f"`{label}`", f"{_replicas(old)} → {_replicas(new)}"]
        cells += [_cell(old, new, m) for m in (*MEASURES, "storage")]
        key = abs((_side(new, "cpu_requests", MAX) or Fraction(0)) - (_side(old, "cpu_requests", MAX) or Fraction(0)))
        rows.append((key, "| " + " | ".join(cells) + " |"))
    for urn in sorted(set(before.claims) | set(after.claims)):
        old_claim, new_claim = before.claims.get(urn), after.claims.get(urn)
        if old_claim == new_claim:
            continue
        label = (new_claim or old_claim)[0]  # type: ignore[index]
        sizes = [c[1] if c else None for c in (old_claim, new_claim)]
        storage = change("storage", *sizes).replace("unbounded", "—")
        rows.append((Fraction(0), f"| `{label}` |  |  |  |  |  | {storage} |"))
    rows.sort(key=lambda row: -row[0])
    return header, [row for _, row in rows]


def notes(after: Capacity) -> list[str]:
    return [f"`{w.label}`: {note}" for w in after.workloads.values() for note in w.notes]


@dataclass(frozen=True)
class Growth:
    setting: str
    measure: str
    increase: Fraction
    limit: Fraction

    def describe(self) -> str:
        label = LABELS[self.measure]
        return (
            f"{label} at the HPA maximum grow by {quantity.signed(amount(self.measure, self.increase))}, "
            f"over `{self.setting}` ({amount(self.measure, self.limit)})"
        )


def growth_over_limits(before: Capacity, after: Capacity, limits: Mapping[str, Fraction]) -> list[Growth]:
    """Totals at the HPA maximum that grow by more than the gate's settings allow."""
    found = []
    for setting, measure in GROWTH_LIMITS.items():
        if setting not in limits:
            continue
        if measure == "storage":
            increase: Amount = after.storage(MAX) - before.storage(MAX)
        else:
            old, new = before.total(MAX).get(measure), after.total(MAX).get(measure)
            increase = None if old is None or new is None else new - old
        if increase is not None and increase > limits[setting]:
            found.append(Growth(setting, measure, increase, limits[setting]))
    return found


def unchanged(before: Capacity, after: Capacity) -> bool:
    return all(before.total(e) == after.total(e) and before.storage(e) == after.storage(e) for e in (MIN, MAX))
