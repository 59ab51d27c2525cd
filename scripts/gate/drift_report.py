"""Drift: what changed in the cluster outside Pulumi, per resource and property, from a
`pulumi refresh --preview-only --json` plan, with known noise filtered by a reviewed allowlist.

A refresh step compares the state Pulumi recorded (oldState) with what the provider read back
(newState). The engine's detailedDiff names the changed properties (`spec.template.spec.
containers[0].image`, `data.LLM_API_KEY`); a provider that gives no detailed diff is compared
output by output here instead. A resource the provider no longer finds is a `delete` step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from scripts.gate import budget
from scripts.gate.plan import SECRET, STACK_TYPE, Step, lookup, parse_steps, path_segments

ALLOWLIST = Path(__file__).with_name("drift-allowlist.yaml")
HPA_TYPES = ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "kubernetes:autoscaling/v1:HorizontalPodAutoscaler")
SECRET_TYPES = ("kubernetes:core/v1:Secret",)
FIELDS = ("type", "path", "scaledByHpa", "reason")


class AllowlistError(ValueError):
    pass


def _path_pattern(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*)", pattern)
    translated = "".join(".*" if p == "**" else r"[^.\[\]]*" if p == "*" else re.escape(p) for p in parts)
    return re.compile(f"^{translated}$")


@dataclass(frozen=True)
class Entry:
    type: str
    path: str
    reason: str
    scaled_by_hpa: bool = False

    def matches(self, resource_type: str, path: str, hpa_target: bool) -> bool:
        if self.scaled_by_hpa and not hpa_target:
            return False
        return fnmatchcase(resource_type, self.type) and bool(_path_pattern(self.path).match(path))


def load_allowlist(path: Path = ALLOWLIST) -> list[Entry]:
    document: Any = yaml.safe_load(path.read_text()) or {}
    raw = document.get("entries") if isinstance(document, dict) else None
    if not isinstance(raw, list):
        raise AllowlistError(f"{path}: expected `entries:` with a list of {{type, path, reason}}")
    entries, problems = [], []
    for index, item in enumerate(raw):
        where = f"{path.name}: entries[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        unknown = sorted(set(item) - set(FIELDS))
        missing = [k for k in ("type", "path", "reason") if not str(item.get(k) or "").strip()]
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(unknown)}; use {', '.join(FIELDS)}")
        if missing:
            problems.append(f"{where}: needs {', '.join(missing)} (every entry says why it is noise)")
        if not unknown and not missing:
            entries.append(
                Entry(str(item["type"]), str(item["path"]), str(item["reason"]), bool(item.get("scaledByHpa")))
            )
    if problems:
        raise AllowlistError("; ".join(problems))
    return entries


@dataclass(frozen=True)
class Difference:
    resource: str  # `Deployment support-app/api`
    urn_name: str
    path: str  # "" for a resource deleted outside Pulumi
    recorded: str | None
    live: str | None
    secret: bool = False
    allowed_by: str | None = None  # the allowlist entry's reason
    handback: str | None = None  # the command that gives the resource's fields back to Pulumi

    def render(self) -> str:
        if not self.path:
            return f"| `{self.resource}` (`{self.urn_name}`) | deleted outside Pulumi | |"
        values = "secret value changed" if self.secret else f"`{self.recorded}` → `{self.live}`"
        return f"| `{self.resource}` (`{self.urn_name}`) | `{self.path}` | {values} |"


def _label(step: Step) -> str:
    state = step.old or step.new or {}
    outputs = state.get("outputs") or {}
    kind = outputs.get("kind") or step.type.rsplit(":", 1)[-1]
    metadata = outputs.get("metadata") or {}
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{kind} {where}{metadata.get('name', step.name)}"


HANDBACK = """-p '{"metadata":{"managedFields":[{}]}}'"""


def _handback(step: Step) -> str | None:
    """A kubectl command clearing the object's field ownership. A hand edit (kubectl edit, patch, set)
    takes the fields it writes from Pulumi's field manager, and Pulumi's next server-side apply of
    another value then fails with a field conflict, at preview already; with the ownership cleared,
    the next deploy owns them again."""
    outputs = (step.old or {}).get("outputs") or {}
    if not step.type.startswith("kubernetes:") or "kind" not in outputs:
        return None
    group, _, version = str(outputs.get("apiVersion", "")).rpartition("/")
    resource = f"{outputs['kind']}.{version}.{group}" if group else str(outputs["kind"])
    metadata = outputs.get("metadata") or {}
    where = f"--namespace {metadata['namespace']} " if metadata.get("namespace") else ""
    return f"kubectl {where}patch {resource} {metadata.get('name')} --type=merge {HANDBACK}"


def _show(value: Any) -> str:
    if value is None:
        return "(absent)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = text.replace("|", "\\|").replace("`", "'").replace("\n", " ")
    return text if len(text) <= 120 else text[:117] + "..."


def _join(prefix: str, key: Any) -> str:
    """A child's property path, written as the engine writes it (PropertyPath.String)."""
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{json.dumps(key)}]"


def _outputs_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Paths where two output trees differ (Pulumi's internal `__` keys aside)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = sorted(k for k in set(old) | set(new) if prefix or not str(k).startswith("__"))
        return [p for k in keys for p in _outputs_diff(old.get(k), new.get(k), _join(prefix, k))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [p for i, (a, b) in enumerate(zip(old, new, strict=True)) for p in _outputs_diff(a, b, f"{prefix}[{i}]")]
    return [] if old == new else [prefix]


def _hpa_targets(steps: Iterable[Step]) -> set[tuple[str, str, str]]:
    targets = set()
    for step in steps:
        if step.type in HPA_TYPES and step.old_inputs is not None:
            ref = lookup(step.old_inputs, "spec", "scaleTargetRef") or {}
            namespace = lookup(step.old_inputs, "metadata", "namespace") or "default"
            targets.add((str(namespace), str(ref.get("kind")), str(ref.get("name"))))
    return targets


def _value_at(state: Mapping[str, Any] | None, path: str) -> Any:
    outputs = (state or {}).get("outputs") or {}
    try:
        return lookup(outputs, *path_segments(path))
    except (ValueError, json.JSONDecodeError):
        return None


def differences(digest: Mapping[str, Any], allowlist: list[Entry]) -> list[Difference]:
    steps = parse_steps(digest)
    targets = _hpa_targets(steps)
    found: list[Difference] = []
    for step in steps:
        if step.type.startswith(STACK_TYPE) or step.type.startswith("pulumi:providers:"):
            continue
        label = _label(step)
        if step.op == "delete" or (step.old is not None and step.new is None):
            found.append(Difference(label, step.name, "", None, None))
            continue
        if step.detailed_diff:
            paths = sorted(step.detailed_diff)
        else:
            paths = _outputs_diff((step.old or {}).get("outputs"), (step.new or {}).get("outputs"))
        outputs = (step.old or {}).get("outputs") or {}
        metadata = outputs.get("metadata") or {}
        key = (str(metadata.get("namespace") or "default"), str(outputs.get("kind")), str(metadata.get("name")))
        for path in paths:
            recorded, live = _value_at(step.old, path), _value_at(step.new, path)
            secret = step.type in SECRET_TYPES or SECRET in (recorded, live) or _under_secret(step, path)
            entry = next((e for e in allowlist if e.matches(step.type, path, key in targets)), None)
            found.append(
                Difference(
                    label,
                    step.name,
                    path,
                    None if secret else _show(recorded),
                    None if secret else _show(live),
                    secret,
                    entry.reason if entry else None,
                    _handback(step),
                )
            )
    return found


def _under_secret(step: Step, path: str) -> bool:
    """Whether any prefix of `path` holds a secret in either state (a secret object hides its leaves)."""
    segments = path_segments(path)
    for state in (step.old, step.new):
        value: Any = (state or {}).get("outputs") or {}
        for segment in segments:
            if value == SECRET:
                return True
            value = lookup(value, segment)
        if value == SECRET:
            return True
    return False


def render(stack: str, found: list[Difference], errors: list[str], limit: int) -> str:
    """The drift summary in the gate's Markdown style, fitted to `limit` characters."""
    drift = [d for d in found if d.allowed_by is None]
    noise = [d for d in found if d.allowed_by is not None]
    resources = len({d.urn_name for d in drift})
    if errors:
        heading = f"### ❌ `{stack}`: drift check failed"
    elif drift:
        heading = f"### ⚠️ `{stack}`: drift in {resources} resource(s), changed outside Pulumi"
    else:
        heading = f"### ✅ `{stack}`: no drift"
    sections = [budget.Section(heading, keep=True)]
    if errors:
        sections.append(
            budget.Section("**The check did not run through**:", items=[f"- {e}" for e in errors], keep=True)
        )
    if drift:
        sections.append(
            budget.Section(
                "**Changed outside Pulumi** (recorded by the last update → live in the cluster):",
                ["| resource | property | recorded → live |", "|---|---|---|"],
                [d.render() for d in drift],
                more="differences",
            )
        )
        undo = sorted({d.handback for d in drift if d.handback})
        sections.append(
            budget.Section(
                "A deploy alone does not see this (it compares with the recorded state), and a hand edit takes "
                "over the fields it writes: the next update of those objects fails with a server-side apply "
                "field conflict. **To keep** a live change, put it in the stack's configuration in a pull "
                "request. **To undo** it, give the fields back to Pulumi, then deploy with `--refresh` (which "
                "also recreates what was deleted):",
                items=[f"- `{command}`" for command in undo],
                more="commands",
                tail=[f"- `scripts/stack.sh up {stack} --refresh`"],
            )
        )
    if noise:
        sections.append(
            budget.Section(
                f"{len(noise)} difference(s) are known noise (scripts/gate/drift-allowlist.yaml):",
                items=[f"- `{d.resource}` `{d.path}`: {d.allowed_by}" for d in noise],
                more="known-noise differences",
            )
        )
    return budget.render(sections, limit)
