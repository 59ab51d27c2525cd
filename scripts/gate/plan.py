"""A Pulumi plan as the engine describes it: the steps of `pulumi preview --json` and the policy
events of `--event-log`, with the engine's own old and new inputs and per-property diffs.

Field names follow the CLI v3.259.0 structures: `display.previewDigest`/`previewStep` (op, urn,
oldState, newState, diffReasons, replaceReasons, detailedDiff of `{kind, inputDiff}`) and
`apitype.EngineEvent`/`PolicyEvent`. The gate previews with `--show-sames`, so unchanged resources are
steps too and the capacity before and after covers the whole stack.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The engine's sentinel for a value computed during the update (unknown at preview).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SECRET = "[secret]"  # noqa: S105 - how the JSON digest prints a secret value
STACK_TYPE = "pulumi:pulumi:Stack"
# Ops after which the resource no longer exists (the engine's deploy.StepOp names).
GONE = {"delete", "delete-replaced", "discard", "discard-replaced", "read-discard", "remove-pending-replace"}
COLUMNS = ("create", "update", "replace", "delete")


@dataclass
class Step:
    op: str
    urn: str
    type: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None = None
    replace_reasons: list[str] = field(default_factory=list)
    diff_reasons: list[str] = field(default_factory=list)
    detailed_diff: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

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

    @property
    def old_inputs(self) -> Mapping[str, Any] | None:
        return None if self.old is None else (self.old.get("inputs") or {})

    @property
    def new_inputs(self) -> Mapping[str, Any] | None:
        if self.new is None or self.op in GONE:
            return None
        return self.new.get("inputs") or {}

    def forced_by(self) -> list[str]:
        """The property paths that force this replacement: the detailed diff's `*-replace` entries
        (`spec.selector.matchLabels["app"]`, `metadata.namespace`), else the engine's replaceReasons
        (top-level keys when the provider gave no detailed diff)."""
        paths = sorted(p for p, d in self.detailed_diff.items() if str(d.get("kind", "")).endswith("-replace"))
        return paths or sorted(self.replace_reasons)

    def changed_paths(self) -> list[str]:
        return sorted(self.detailed_diff) or sorted(self.diff_reasons)


@dataclass(frozen=True)
class PolicyFinding:
    policy: str
    level: str
    resource: str
    message: str


def _type_of(raw: Mapping[str, Any]) -> str:
    state = raw.get("newState") or raw.get("oldState") or {}
    return str(state.get("type") or raw["urn"].split("::")[-2].rsplit("$", 1)[-1])


def parse_steps(digest: Mapping[str, Any]) -> list[Step]:
    """The digest's steps. A replacement the engine reports as several steps (create-replacement,
    replace, delete-replaced: an update's event log does) is folded into its `replace` step."""
    steps = [
        Step(
            op=raw["op"],
            urn=raw["urn"],
            type=_type_of(raw),
            old=raw.get("oldState"),
            new=raw.get("newState"),
            replace_reasons=list(raw.get("replaceReasons") or []),
            diff_reasons=list(raw.get("diffReasons") or []),
            detailed_diff=dict(raw.get("detailedDiff") or {}),
        )
        for raw in digest.get("steps") or []
    ]
    replaces = {s.urn: s for s in steps if s.op == "replace"}
    kept = []
    for step in steps:
        main = replaces.get(step.urn)
        if main is None or step is main or step.op not in ("create-replacement", "delete-replaced"):
            kept.append(step)
            continue
        main.old = main.old or step.old
        if step.op == "create-replacement":
            main.new = main.new or step.new
        main.replace_reasons = sorted(set(main.replace_reasons) | set(step.replace_reasons))
        main.detailed_diff = {**step.detailed_diff, **main.detailed_diff}
    return kept


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


def has_prior_state(steps: Iterable[Step]) -> bool:
    """Whether the stack held any resource before this plan (the stack resource itself aside)."""
    return any(s.old is not None and not s.type.startswith(STACK_TYPE) for s in steps)


def lookup(value: Any, *path: str | int) -> Any:
    """value[path[0]][path[1]]..., or None where the path does not exist."""
    for key in path:
        if isinstance(key, int):
            if not isinstance(value, list) or key >= len(value):
                return None
        elif not isinstance(value, Mapping):
            return None
        value = value[key] if isinstance(key, int) else value.get(key)
    return value


def path_segments(path: str) -> list[str | int]:
    """A property path as the engine writes it (`spec.containers[0].image`,
    `metadata.annotations["example.com/key"]`) as keys and indexes."""
    segments: list[str | int] = []
    i, word = 0, ""
    while i < len(path):
        char = path[i]
        if char == ".":
            if word:
                segments.append(word)
            word = ""
        elif char == "[":
            if word:
                segments.append(word)
            word = ""
            end = path.index("]", i) if path[i + 1] != '"' else path.index('"]', i + 2) + 1
            inner = path[i + 1 : end]
            segments.append(json.loads(inner) if inner.startswith('"') else int(inner) if inner.isdigit() else inner)
            i = end
        else:
            word += char
        i += 1
    if word:
        segments.append(word)
    return segments
