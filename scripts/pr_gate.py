"""Pull-request gate: preview a stack, summarise the plan in Markdown, stop plans that lose data.

    venv/bin/python scripts/pr_gate.py --stack production --summary gate.md [--allow-destructive REASON]

Runs `pulumi preview --json` (through scripts/stack.sh: the project's backend, engine and policy
pack) with an engine event log beside it, because the JSON digest leaves policy events out. The
summary counts creates, updates, replaces and deletes per resource type and lists every policy
finding. The gate fails when the preview fails (a mandatory policy included) or when the plan would
replace or delete a resource that holds data: a StatefulSet, a PersistentVolumeClaim or
PersistentVolume, a Secret with data, a CustomResourceDefinition (deleting one deletes every object
of its kind), a Namespace (deleting one deletes everything in it) or any protected resource.
`--allow-destructive REASON` lets such a plan pass, and the summary records who said why.

Exit codes: 0 pass, 1 blocked or preview failed, 2 usage or engine error.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

DATA_TYPES = {
    "kubernetes:apps/v1:StatefulSet": "StatefulSet",
    "kubernetes:core/v1:PersistentVolumeClaim": "PersistentVolumeClaim",
    "kubernetes:core/v1:PersistentVolume": "PersistentVolume",
    "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition": "CustomResourceDefinition",
    "kubernetes:core/v1:Namespace": "Namespace",
}
SECRET_TYPE = "kubernetes:core/v1:Secret"  # noqa: S105 - a type token, not a password
# Columns of the summary; every replacement-flavoured op counts as a replace.
COLUMNS = ("create", "update", "replace", "delete")


@dataclass
class Step:
    op: str
    urn: str
    type: str
    old: Mapping[str, Any] | None
    replace_reasons: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def column(self) -> str | None:
        if "replace" in self.op:
            return "replace"
        if self.op in ("delete", "discard"):
            return "delete"
        if self.op in ("create", "update"):
            return self.op
        return None


@dataclass(frozen=True)
class PolicyFinding:
    policy: str
    level: str
    resource: str
    message: str


@dataclass
class GateResult:
    stack: str
    preview_ok: bool
    steps: list[Step]
    findings: list[PolicyFinding]
    blocked: list[tuple[Step, str]]
    override: str | None
    errors: list[str]

    @property
    def passed(self) -> bool:
        return self.preview_ok and (not self.blocked or self.override is not None)


def parse_steps(digest: Mapping[str, Any]) -> list[Step]:
    steps = []
    for raw in digest.get("steps") or []:
        state = raw.get("newState") or raw.get("oldState") or {}
        resource_type = state.get("type") or raw["urn"].split("::")[-2].rsplit("$", 1)[-1]
        steps.append(
            Step(
                op=raw["op"],
                urn=raw["urn"],
                type=resource_type,
                old=raw.get("oldState"),
                replace_reasons=list(raw.get("replaceReasons") or []),
            )
        )
    return steps


def parse_policy_events(lines: Iterable[str]) -> list[PolicyFinding]:
    findings = []
    for raw in lines:
        if not raw.strip():
            continue
        event = json.loads(raw).get("policyEvent")
        if event:
            level = event.get("enforcementLevel", "")
            findings.append(
                PolicyFinding(
                    policy=event.get("policyName", ""),
                    level="advisory" if level in ("advisory", "warning") else level,
                    resource=str(event.get("resourceUrn", "")).rsplit("::", 1)[-1],
                    message=" ".join(str(event.get("message", "")).split()),
                )
            )
    return findings


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
) -> GateResult:
    steps = parse_steps(digest)
    blocked = [(s, why) for s in steps if (why := destructive(s)) is not None]
    errors = list(errors or [])
    for diagnostic in digest.get("diagnostics") or []:
        if diagnostic.get("severity") == "error":
            errors.append(" ".join(str(diagnostic.get("message", "")).split()))
    return GateResult(stack, preview_ok, steps, parse_policy_events(events), blocked, override, errors)


def _table(steps: list[Step]) -> list[str]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for step in steps:
        if step.column and not step.type.startswith("pulumi:pulumi:Stack"):
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


def render_summary(result: GateResult) -> str:
    verdict = "passed" if result.passed else "blocked"
    icon = "✅" if result.passed else "❌"
    lines = [f"### {icon} `{result.stack}`: gate {verdict}", ""]
    lines += _table(result.steps)
    lines.append("")
    mandatory = [f for f in result.findings if f.level == "mandatory"]
    advisory = [f for f in result.findings if f.level != "mandatory"]
    lines.append(f"**Policies**: {len(mandatory)} mandatory and {len(advisory)} advisory finding(s).")
    for finding in mandatory + advisory:
        lines.append(f"- {finding.level} `{finding.policy}` on `{finding.resource or 'stack'}`: {finding.message}")
    if result.blocked:
        lines += ["", "**Data at risk**: this plan would replace or delete:"]
        for step, why in result.blocked:
            reasons = f" (because of {', '.join(step.replace_reasons)})" if step.replace_reasons else ""
            lines.append(f"- `{step.op}` {why} `{step.name}`{reasons}")
        if result.override is not None:
            lines.append(f"\nAllowed by override: {result.override}")
        else:
            lines.append(
                "\nTo accept it, re-run with `--allow-destructive REASON` (pull request label `allow-destructive`)."
            )
    if result.errors or not result.preview_ok:
        lines += ["", "**Preview failed**:"]
        lines += [f"- {e}" for e in result.errors] or ["- see the job log"]
    return "\n".join(lines) + "\n"


def run_preview(stack: str) -> tuple[dict[str, Any], list[str], bool, list[str]]:
    with tempfile.TemporaryDirectory() as scratch:
        event_log = Path(scratch) / "events.jsonl"
        proc = subprocess.run(  # noqa: S603 - our own script with fixed arguments
            [str(ROOT / "scripts" / "stack.sh"), "preview-json", stack, "--event-log", str(event_log)],
            capture_output=True,
            text=True,
            check=False,
        )
        events = event_log.read_text().splitlines() if event_log.exists() else []
    sys.stderr.write(proc.stderr)
    try:
        digest = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        return {}, events, False, [f"preview printed no JSON: {proc.stdout.strip()[:500]}"]
    errors = [] if proc.returncode == 0 else [f"pulumi preview exited {proc.returncode}"]
    return digest, events, proc.returncode == 0, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, choices=("dev", "staging", "production"))
    parser.add_argument("--summary", type=Path, help="write the Markdown summary here (appends)")
    parser.add_argument("--allow-destructive", metavar="REASON", help="let a data-destroying plan pass")
    parser.add_argument("--preview-json", type=Path, help="use this preview JSON instead of running preview")
    parser.add_argument("--event-log", type=Path, help="with --preview-json: the engine event log")
    args = parser.parse_args(argv)

    if args.preview_json:
        digest = json.loads(args.preview_json.read_text())
        events = args.event_log.read_text().splitlines() if args.event_log else []
        preview_ok, errors = True, list[str]()
    else:
        digest, events, preview_ok, errors = run_preview(args.stack)
    result = evaluate(args.stack, digest, events, preview_ok, args.allow_destructive, errors)
    summary = render_summary(result)
    print(summary)
    if args.summary:
        with args.summary.open("a") as out:
            out.write(summary)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
