"""The gate's settings file (scripts/gate/settings.yaml): growth caps per stack."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from scripts.gate import quantity
from scripts.gate.capacity_report import GROWTH_LIMITS

SETTINGS = Path(__file__).with_name("settings.yaml")


class SettingsError(ValueError):
    pass


def growth_limits(stack: str, path: Path = SETTINGS) -> dict[str, Fraction]:
    """The caps set for `stack` (none when the file or the stack's entry is absent); every bad entry
    is named with its key and the fix, all at once."""
    if not path.exists():
        return {}
    document: Any = yaml.safe_load(path.read_text()) or {}
    stacks = document.get("stacks") if isinstance(document, dict) else None
    if not isinstance(stacks, dict):
        raise SettingsError(f"{path.name}: expected a mapping `stacks: {{<stack>: {{maxCpuIncrease: ...}}}}`")
    entry = stacks.get(stack) or {}
    if not isinstance(entry, dict):
        raise SettingsError(f"{path.name}: stacks.{stack} must be a mapping of caps")
    problems, limits = [], {}
    for key, value in entry.items():
        if key not in GROWTH_LIMITS:
            problems.append(f"stacks.{stack}.{key}: unknown setting; use one of {', '.join(GROWTH_LIMITS)}")
            continue
        try:
            limits[key] = quantity.parse(value)
        except quantity.QuantityError:
            example = '"2" or "500m"' if key == "maxCpuIncrease" else '"4Gi"'
            problems.append(f"stacks.{stack}.{key}: {value!r} is not a quantity; write it like {example}")
            continue
        if limits[key] < 0:
            problems.append(f"stacks.{stack}.{key}: a cap cannot be negative")
    if problems:
        raise SettingsError(f"{path.name}: " + "; ".join(problems))
    return limits
