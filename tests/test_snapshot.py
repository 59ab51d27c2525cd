"""A normalised, sorted snapshot of what each stack deploys: every change shows in review.

Update after an intended change with `make snapshot` (pytest --snapshot-update) and review the diff.
"""

from __future__ import annotations

from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.harness import ROOT, STACKS, ProgramRun, RecordedResource, run_program


def _redact(value: Any, path: str, secret_paths: set[str]) -> Any:
    if path in secret_paths:
        return "[secret]"
    if isinstance(value, dict):
        return {k: _redact(v, f"{path}.{k}" if path else k, secret_paths) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_redact(v, f"{path}.{i}", secret_paths) for i, v in enumerate(value)]
    if isinstance(value, str):
        return value.replace(str(ROOT), "<project>")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _short(urn: str | None) -> str | None:
    # urn:pulumi:<stack>::<project>::<type chain>::<name>[::<id>] -> "<type>::<name>"
    if urn is None:
        return None
    parts = urn.split("::")
    return f"{parts[2].rsplit('$', 1)[-1]}::{parts[3]}"


def normalise(resource: RecordedResource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": resource.type,
        "name": resource.name,
        "parent": _short(resource.parent),
        "inputs": _redact(resource.inputs, "", resource.secret_paths),
    }
    if resource.provider:
        entry["provider"] = _short(resource.provider)
    if resource.protect:
        entry["protect"] = True
    if resource.retain_on_delete:
        entry["retainOnDelete"] = True
    return entry


def snapshot_of(run: ProgramRun) -> dict[str, Any]:
    return {
        "resources": sorted((normalise(r) for r in run.resources), key=lambda e: (e["type"], e["name"])),
        "outputs": _redact(run.outputs, "", set()),
    }


@pytest.fixture
def json_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_snapshot(stack: str, json_snapshot: SnapshotAssertion) -> None:
    run = run_program(stack)
    assert run.error is None, run.error
    assert snapshot_of(run) == json_snapshot
