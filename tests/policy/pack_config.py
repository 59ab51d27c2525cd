"""Loads `policies/config/<stack>.json` the way `pulumi preview --policy-pack-config` does.

The CLI (pkg/resource/analyzer/config.go) parses each entry as an enforcement level string or an
object whose `enforcementLevel` is split off from the properties; fills every policy's properties
with the `default` of its config schema; applies `all` first, then each named policy; and
validates each policy's properties against `{"type": "object", "properties": ..., "required":
...}`. This loader does the same and is stricter in two ways the CLI is not: unknown policy names
and unknown properties are errors, since a typo would otherwise silently do nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi_policy import EnforcementLevel, Policy

from . import POLICIES_DIR

CONFIG_DIR = POLICIES_DIR / "config"
STACKS = ("dev", "staging", "production")


class PackConfigError(ValueError):
    """Every problem of one config file, one per line."""


@dataclass(frozen=True)
class PolicyConfig:
    level: EnforcementLevel
    properties: dict[str, Any]


def config_path(stack: str) -> Path:
    return CONFIG_DIR / f"{stack}.json"


def read_config_file(stack: str) -> dict[str, Any]:
    with config_path(stack).open(encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise PackConfigError(f"{config_path(stack)}: the top level must be an object")
    return data


def _split(name: str, entry: Any) -> tuple[EnforcementLevel | None, dict[str, Any]]:
    levels = {level.value: level for level in EnforcementLevel}
    if isinstance(entry, str):
        if entry not in levels:
            raise PackConfigError(f"{name}: {entry!r} is not an enforcement level")
        return levels[entry], {}
    if not isinstance(entry, dict):
        raise PackConfigError(f"{name}: must be an enforcement level or an object")
    properties = dict(entry)
    raw_level = properties.pop("enforcementLevel", None)
    if raw_level is None:
        return None, properties
    if raw_level not in levels:
        raise PackConfigError(f"{name}.enforcementLevel: {raw_level!r} is not an enforcement level")
    return levels[raw_level], properties


def reconcile(
    policies: list[Policy],
    raw: Mapping[str, Any],
    pack_level: EnforcementLevel = EnforcementLevel.MANDATORY,
) -> dict[str, PolicyConfig]:
    by_name = {p.name: p for p in policies}
    result: dict[str, PolicyConfig] = {}
    for policy in policies:
        schema = policy.config_schema.properties if policy.config_schema else {}
        defaults = {k: v["default"] for k, v in schema.items() if "default" in v}
        result[policy.name] = PolicyConfig(policy.enforcement_level or pack_level, defaults)

    errors: list[str] = []
    if "all" in raw:
        all_level, _ = _split("all", raw["all"])
        if all_level is not None:
            result = {k: PolicyConfig(all_level, v.properties) for k, v in result.items()}
    for name, entry in raw.items():
        if name == "all":
            continue
        if name not in by_name:
            errors.append(f"{name}: no such policy in the pack")
            continue
        level, properties = _split(name, entry)
        current = result[name]
        result[name] = PolicyConfig(level or current.level, {**current.properties, **properties})

    for name, config in result.items():
        policy_schema = by_name[name].config_schema
        object_schema: dict[str, Any] = {
            "type": "object",
            "properties": policy_schema.properties if policy_schema else {},
            "additionalProperties": False,
        }
        if policy_schema and policy_schema.required:
            object_schema["required"] = policy_schema.required
        errors += [f"{name}{where}: {why}" for where, why in validate(config.properties, object_schema)]
    if errors:
        raise PackConfigError("\n".join(errors))
    return result


def load_stack_config(stack: str, policies: list[Policy]) -> dict[str, PolicyConfig]:
    try:
        return reconcile(policies, read_config_file(stack))
    except PackConfigError as error:
        raise PackConfigError(f"{config_path(stack)}:\n{error}") from error


# --- the subset of JSON Schema the pack's config schemas use ---------------------------------

_TYPES: Mapping[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and math.isfinite(v) and v.is_integer())
    ),
}
_SUPPORTED = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "minimum",
    "minLength",
    "default",
    "description",
}


def validate(value: Any, schema: Mapping[str, Any], where: str = "") -> list[tuple[str, str]]:
    """(location, problem) pairs; raises on a schema keyword this subset does not implement."""
    unsupported = set(schema) - _SUPPORTED
    if unsupported:
        raise NotImplementedError(f"schema keywords {sorted(unsupported)} at {where or '(root)'}")
    expected = schema.get("type")
    if expected is not None and not _TYPES[expected](value):
        return [(where, f"expected {expected}, found {json.dumps(value)}")]
    problems: list[tuple[str, str]] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append((where, f"{json.dumps(value)} is not one of {schema['enum']}"))
    if "minimum" in schema and value < schema["minimum"]:
        problems.append((where, f"{value} is below the minimum {schema['minimum']}"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        problems.append((where, f"shorter than {schema['minLength']} characters"))
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append((where, f"{key} is required"))
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                problems += validate(item, properties[key], f"{where}.{key}")
            elif extra is False:
                problems.append((f"{where}.{key}", "unknown property"))
            elif isinstance(extra, Mapping):
                problems += validate(item, extra, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += validate(item, schema["items"], f"{where}[{index}]")
    return problems
