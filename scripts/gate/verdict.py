"""The gate's verdict on a plan: what would lose data, growth over the caps, and a shared stack
previewed against nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from scripts.gate import capacity, capacity_report, config_diff
from scripts.gate.plan import PolicyFinding, Step, has_prior_state, parse_policy_events, parse_steps

SHARED_STACKS = ("staging", "production")
DATA_TYPES = {
    "kubernetes:apps/v1:StatefulSet": "StatefulSet",
    "kubernetes:core/v1:PersistentVolumeClaim": "PersistentVolumeClaim",
    "kubernetes:core/v1:PersistentVolume": "PersistentVolume",
    "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition": "CustomResourceDefinition",
    "kubernetes:core/v1:Namespace": "Namespace",
}
SECRET_TYPE = "kubernetes:core/v1:Secret"  # noqa: S105 - a type token, not a password


@dataclass
class GateResult:
    stack: str
    preview_ok: bool
    steps: list[Step]
    findings: list[PolicyFinding]
    blocked: list[tuple[Step, str]]
    override: str | None
    errors: list[str]
    first_deploy: str | None = None
    empty: bool = False  # no resource had prior state
    no_backend: bool = False
    before: capacity.Capacity = field(default_factory=capacity.Capacity)
    after: capacity.Capacity = field(default_factory=capacity.Capacity)
    growth: list[capacity_report.Growth] = field(default_factory=list)
    allow_growth: str | None = None
    config_changes: list[config_diff.Change] | None = None
    config_error: str | None = None  # why the stack file could not be compared

    @property
    def refused_empty(self) -> bool:
        """A shared stack previewed against nothing, without a declared first deploy."""
        if self.stack not in SHARED_STACKS or self.first_deploy is not None:
            return False
        return self.no_backend or (self.preview_ok and self.empty)

    @property
    def passed(self) -> bool:
        return (
            self.preview_ok
            and not self.refused_empty
            and (not self.blocked or self.override is not None)
            and (not self.growth or self.allow_growth is not None)
        )


def _holds_data(state: Mapping[str, Any]) -> bool:
    for key in ("inputs", "outputs"):
        values = state.get(key) or {}
        if values.get("data") or values.get("stringData"):
            return True
    return False


def destructive(step: Step) -> str | None:
    """Why this step would lose data, or None."""
    if step.column not in ("replace", "delete") or step.old is None:
        return None
    if step.old.get("protect"):
        return "protected resource"
    if step.type in DATA_TYPES:
        return DATA_TYPES[step.type]
    if step.type == SECRET_TYPE and _holds_data(step.old):
        return "Secret holding data"
    return None


def evaluate(
    stack: str,
    digest: Mapping[str, Any],
    events: Iterable[str],
    preview_ok: bool,
    override: str | None,
    errors: list[str] | None = None,
    *,
    first_deploy: str | None = None,
    no_backend: bool = False,
    growth_limits: Mapping[str, Fraction] | None = None,
    allow_growth: str | None = None,
    config_changes: list[config_diff.Change] | None = None,
    config_error: str | None = None,
) -> GateResult:
    steps = parse_steps(digest)
    blocked = [(s, why) for s in steps if (why := destructive(s)) is not None]
    errors = list(errors or [])
    for diagnostic in digest.get("diagnostics") or []:
        if diagnostic.get("severity") == "error":
            errors.append(" ".join(str(diagnostic.get("message", "")).split()))
    before, after = capacity.before_and_after(steps)
    empty = not has_prior_state(steps)
    # A first deploy adds everything: the cap is for growth of a running stack.
    growth = [] if empty else capacity_report.growth_over_limits(before, after, growth_limits or {})
    return GateResult(
        stack,
        preview_ok,
        steps,
        parse_policy_events(events),
        blocked,
        override,
        errors,
        first_deploy=first_deploy,
        empty=empty,
        no_backend=no_backend,
        before=before,
        after=after,
        growth=growth,
        allow_growth=allow_growth,
        config_changes=config_changes,
        config_error=config_error,
    )
