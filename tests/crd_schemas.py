"""Validate custom resources against their projects' published CRDs (fetched by scripts/crds.sh).

The check is what the API server does with a structural schema, short of CEL rules (the cluster
tests run those): the OpenAPI v3 schema of the served version, plus pruning, so that a field the
schema does not know is an error here instead of being dropped silently there.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def crd_directory() -> Path:
    proc = subprocess.run([str(ROOT / "scripts" / "crds.sh")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"scripts/crds.sh failed:\n{proc.stderr[-3000:]}"
    return Path(proc.stdout.strip().splitlines()[-1])


class _CrdLoader(yaml.SafeLoader):
    """PyYAML resolves a bare `=` (an enum value in the operator's CRDs) to YAML 1.1's `value` type,
    which it cannot construct; the CRDs mean the string."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


@functools.cache
def crds() -> dict[tuple[str, str], dict[str, Any]]:
    """(group, kind) -> CRD document."""
    found = {}
    for path in sorted(crd_directory().glob("*.yaml")):
        for document in yaml.load_all(path.read_text(), Loader=_CrdLoader):
            if document and document.get("kind") == "CustomResourceDefinition":
                spec = document["spec"]
                found[(spec["group"], spec["names"]["kind"])] = document
    return found


def schema_for(api_version: str, kind: str) -> dict[str, Any]:
    group, _, version = api_version.rpartition("/")
    crd = crds().get((group, kind))
    assert crd is not None, f"no published CRD for {kind}.{group}"
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            assert served.get("served", False), f"{kind} {api_version} is not served"
            schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
            return schema
    raise AssertionError(f"{kind}.{group} has no version {version}")


def _unknown_fields(value: Any, schema: Mapping[str, Any], path: str) -> Iterator[str]:
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, Mapping):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                yield from _unknown_fields(item, properties[key], f"{path}.{key}")
            elif isinstance(additional, Mapping):
                yield from _unknown_fields(item, additional, f"{path}.{key}")
            else:
                yield f"{path}.{key}".lstrip(".")
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], f"{path}[{index}]")


def validation_errors(manifest: Mapping[str, Any]) -> list[str]:
    """Every schema violation and unknown (pruned) field of one custom resource."""
    schema = schema_for(manifest["apiVersion"], manifest["kind"])
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(manifest)
    ]
    body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
    errors += [f"{field}: unknown field (the API server would prune it)" for field in _unknown_fields(body, schema, "")]
    return errors
