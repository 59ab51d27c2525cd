"""The gate's Markdown summary: verdict, data at risk and totals first and never cut; replacements
with the property that forces each, capacity per workload, the stack file's changes and every other
change after, as far as the comment's size allows (scripts/gate/budget.py)."""

from __future__ import annotations

import sys
from collections import Counter, defaultdict

from scripts.gate import budget, capacity_report, config_diff
from scripts.gate.plan import COLUMNS, STACK_TYPE, PolicyFinding, Step
from scripts.gate.verdict import SHARED_STACKS, GateResult

NO_BACKEND = (
    "PULUMI_BACKEND_URL is not set, so the preview would run against a private, empty state and pass on "
    "nothing. Set the `PULUMI_BACKEND_URL` secret of the `{stack}-preview` environment to the team's state "
    "backend (docs/pull-requests.md), or, for the stack's very first deploy, add the `first-deploy` label "
    "(`--first-deploy REASON`)."
)
NO_STATE = (
    "`{stack}` has no prior state in this backend: every resource would be created and the gate would compare "
    "against nothing. If the stack has been deployed, PULUMI_BACKEND_URL points at the wrong backend: set it to "
    "the one that holds `{stack}`. If this is its first deploy, add the `first-deploy` label "
    "(`--first-deploy REASON`)."
)


def _table(steps: list[Step]) -> list[str]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for step in steps:
        if step.column and not step.type.startswith(STACK_TYPE):
            counts[step.type][step.column] += 1
    if not counts:
        return ["No changes."]
    lines = ["| resource type | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for resource_type in sorted(counts):
        cells = [str(counts[resource_type][c] or "") for c in COLUMNS]
        lines.append(f"| `{resource_type}` | " + " | ".join(cells) + " |")
    totals = [str(sum(c[col] for c in counts.values()) or "") for col in COLUMNS]
    lines.append("| **total** | " + " | ".join(totals) + " |")
    return lines


def _paths(paths: list[str], most: int = 6) -> str:
    shown = ", ".join(f"`{p}`" for p in paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def _head(result: GateResult) -> list[str]:
    verdict = "passed" if result.passed else "blocked"
    lines = [f"### {'✅' if result.passed else '❌'} `{result.stack}`: gate {verdict}"]
    if result.first_deploy is not None and (result.empty or result.no_backend):
        where = " with no team backend configured" if result.no_backend else ""
        lines.append(
            f"\n🆕 **First deploy** of `{result.stack}`, declared: {result.first_deploy}. Previewed against no prior "
            f"state{where}: every resource is created and the growth caps do not apply."
        )
    elif result.first_deploy is not None and result.stack in SHARED_STACKS:
        lines.append(
            f"\nA first deploy was declared ({result.first_deploy}) but `{result.stack}` has prior state: "
            "the declaration changes nothing."
        )
    if result.refused_empty:
        template = NO_BACKEND if result.no_backend else NO_STATE
        lines.append("\n**Nothing to compare against**: " + template.format(stack=result.stack))
    return lines


def _sections(result: GateResult) -> list[budget.Section]:
    """The sections never cut: verdict, failures, data at risk, growth, totals, mandatory findings.
    Their lists are items all the same, so that a list longer than a whole comment is counted."""
    keep = [budget.Section(lines=_head(result), keep=True)]
    if result.errors or not result.preview_ok:
        errors = [f"- {e}" for e in result.errors] or ["- see the job log"]
        keep.append(budget.Section("**Preview failed**:", items=errors, more="errors", keep=True))
    if result.blocked:
        risk = [
            f"- `{step.op}` {why} `{step.name}`"
            + (f" (because of {_paths(step.forced_by())})" if step.forced_by() else "")
            for step, why in result.blocked
        ]
        how = (
            f"\nAllowed by override: {result.override}"
            if result.override is not None
            else "\nTo accept it, re-run with `--allow-destructive REASON` (pull request label `allow-destructive`)."
        )
        heading = "**Data at risk**: this plan would replace or delete:"
        keep.append(budget.Section(heading, items=risk, more="resources at risk", tail=[how], keep=True))
    if result.growth:
        how = (
            f"\nAllowed by override: {result.allow_growth}"
            if result.allow_growth is not None
            else "\nTo accept it, re-run with `--allow-growth REASON` (pull request label `allow-growth`)."
        )
        heading = "**Growth over the gate's cap** (scripts/gate/settings.yaml):"
        keep.append(budget.Section(heading, [f"- {g.describe()}" for g in result.growth], tail=[how], keep=True))
    keep.append(budget.Section(lines=_table(result.steps), keep=True))
    if result.before.workloads or result.after.workloads or result.before.claims or result.after.claims:
        keep.append(
            budget.Section(
                "**Capacity** (requests and limits times replicas, before → after; docs/pull-requests.md):",
                capacity_report.totals(result.before, result.after),
                keep=True,
            )
        )
    mandatory = [f for f in result.findings if f.level == "mandatory"]
    advisory = [f for f in result.findings if f.level != "mandatory"]

    def finding(f: PolicyFinding) -> str:
        return f"- {f.level} `{f.policy}` on `{f.resource or 'stack'}`: {f.message}"

    keep.append(
        budget.Section(
            f"**Policies**: {len(mandatory)} mandatory and {len(advisory)} advisory finding(s).",
            items=[finding(f) for f in mandatory],
            more="mandatory findings",
            keep=True,
        )
    )
    return keep + _detail_sections(result, [finding(f) for f in advisory])


def _detail_sections(result: GateResult, advisory: list[str]) -> list[budget.Section]:
    replaces = [s for s in result.steps if s.column == "replace"]
    header, rows = capacity_report.workload_rows(result.before, result.after)
    # Deletes first, then updates, then creates: what removes or alters comes before what only adds.
    rank = {"delete": 0, "update": 1, "create": 2}
    others = sorted((s for s in result.steps if s.column in rank), key=lambda s: rank[s.column or ""])
    unchanged = sum(1 for s in result.steps if s.op == "same" and not s.type.startswith(STACK_TYPE))
    sections = [
        budget.Section(
            "**Replacements**, and the property that forces each:",
            items=[
                f"- `{s.type.rsplit(':', 1)[-1]}` `{s.name}`: "
                + (
                    _paths(s.forced_by())
                    if s.forced_by()
                    else "no property named (a `--replace` or `replaceOnChanges`)"
                )
                for s in replaces
            ],
            more="replacements",
        )
        if replaces
        else budget.Section(),
        budget.Section(
            "**Capacity per workload** (at min; at max where the HPA range differs):",
            header.split("\n"),
            rows,
            more="workloads",
            tail=["", *[f"- {n}" for n in capacity_report.notes(result.after)]]
            if capacity_report.notes(result.after)
            else [],
        )
        if rows
        else budget.Section(),
    ]
    if result.config_changes is not None or result.config_error is not None:
        if result.config_error is not None:
            items = [f"- could not compare: {result.config_error}"]
        else:
            items = config_diff.render(result.config_changes or []) or ["- no change"]
        sections.append(
            budget.Section(
                f"**Stack configuration** (`Pulumi.{result.stack}.yaml`, base branch → this pull request):",
                items=items,
                more="settings",
            )
        )
    if advisory:
        sections.append(budget.Section("**Advisory findings**:", items=advisory, more="advisory findings"))
    sections.append(
        budget.Section(
            "**Other changes**:" if others else "",
            items=[
                f"- `{s.op}` `{s.type.rsplit(':', 1)[-1]}` `{s.name}`"
                + (f": {_paths(s.changed_paths())}" if s.op == "update" and s.changed_paths() else "")
                for s in others
            ],
            more="changes",
            tail=[f"… and {unchanged} more unchanged."] if unchanged else [],
        )
    )
    return sections


def render_summary(result: GateResult, limit: int | None = budget.LIMIT) -> str:
    """The Markdown summary, at most `limit` characters (None: everything, for the job log)."""
    return budget.render(_sections(result), limit if limit is not None else sys.maxsize)
