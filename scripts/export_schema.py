"""Regenerate what is derived from the settings model (`make schema`).

- schema/stack-config.schema.json: editors that read the `yaml-language-server: $schema=` line of
  each Pulumi.<stack>.yaml complete and validate stack config as it is typed.
- The configuration reference in docs/configuration.md (between the config-reference markers): every
  key, its type, default, per-stack value and description.
Tests fail when either is stale.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydantic import BaseModel  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402

from components.config import (  # noqa: E402 - needs the project on sys.path
    EXTERNAL_SECRET_KEYS,
    EXTERNAL_STORE_SECRETS,
    PROJECT,
    REQUIRED_OUTSIDE_DEV,
    Settings,
    stack_config_schema,
)

SCHEMA_PATH = ROOT / "schema" / "stack-config.schema.json"
# Secret config of Alertmanager's receivers, and when a stack needs it (MonitoringSettings.required_secrets).
ALERTING_SECRETS = {
    "slackWebhookUrl": "when a receiver has slack",
    "smtpPassword": "when monitoring.smtp sets authUsername",
}
REFERENCE_PATH = ROOT / "docs" / "configuration.md"
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"
STACKS = ("dev", "staging", "production")


def render() -> str:
    return json.dumps(stack_config_schema(), indent=2, sort_keys=True) + "\n"


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(model, keyed): the model a field holds and whether a map key comes first."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is dict and len(args) == 2:
        inner, _ = _model_of(args[1])
        return inner, inner is not None
    for arg in args:
        inner, keyed = _model_of(arg)
        if inner is not None:
            return inner, keyed
    return None, False


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args if a is not type(None))
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if origin is dict:
        return f"map[{_type_name(args[0])}, {_type_name(args[1])}]"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(field: FieldInfo) -> str:
    bounds = []
    for meta in field.metadata:
        for attr, sign in (("ge", ">="), ("le", "<=")):
            if getattr(meta, attr, None) is not None:
                bounds.append(f"{sign} {getattr(meta, attr)}")
    return f" ({', '.join(bounds)})" if bounds else ""


_MISSING = object()


def _default(field: FieldInfo, value: Any) -> str:
    if value is _MISSING:
        value = field.default
    if value is PydanticUndefined:
        return "required"
    if value is None or value in ([], {}):
        return "—"
    return f"`{json.dumps(value)}`"


def _fields(
    model: type[BaseModel], prefix: str, defaults: BaseModel | None = None
) -> typing.Iterator[tuple[str, FieldInfo, Any]]:
    """(path, field, default) of every leaf; a nested object's default comes from its parent's."""
    for name, field in model.model_fields.items():
        path = f"{prefix}.{field.alias or name}" if prefix else (field.alias or name)
        default = getattr(defaults, name) if defaults is not None else _MISSING
        nested, keyed = _model_of(field.annotation)
        if nested is not None:
            if default is _MISSING:
                default = field.default
            inherited = default if isinstance(default, BaseModel) and not keyed else None
            yield from _fields(nested, f"{path}.<name>" if keyed else path, inherited)
        else:
            yield path, field, default


def _stack_value(document: dict[str, Any], path: str) -> str:
    top, _, rest = path.partition(".")
    value: Any = (document.get("config") or {}).get(f"{PROJECT}:{top}")
    if "<name>" in rest:
        head, _, tail = rest.partition(".<name>.")
        for part in head.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, dict):
            return ""
        found = {}
        for name, item in value.items():
            leaf: Any = item
            for part in tail.split("."):
                leaf = leaf.get(part) if isinstance(leaf, dict) else None
            if leaf is not None:
                found[name] = leaf
        return "<br>".join(f"{n}: `{json.dumps(v)}`" for n, v in found.items())
    for part in rest.split(".") if rest else []:
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else f"`{json.dumps(value)}`"


def render_reference() -> str:
    documents = {s: yaml.safe_load((ROOT / f"Pulumi.{s}.yaml").read_text()) or {} for s in STACKS}
    lines = [
        START,
        "",
        f"Keys are `{PROJECT}:<key>` in `Pulumi.<stack>.yaml`. A blank stack column means the default. "
        "Under `app.services.<name>` the built-in api, web, agent and mcp definitions "
        "(`BUILTIN_SERVICES` in `components/config/`) supply ports, probes, resources, env, "
        "secretEnv and connections, so a stack states only what differs. "
        "Generated from `components/config/` by `make schema`.",
        "",
        "| key | type | default | dev | staging | production | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for path, field, default in _fields(Settings, ""):
        cells = [
            f"`{path}`",
            _type_name(field.annotation) + _constraints(field),
            _default(field, default),
            *(_stack_value(documents[s], path) for s in STACKS),
            (field.description or "").replace("|", "\\|").replace("\n", " "),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Secret keys, set with `pulumi config set --secret <key> --stack <stack>` (never in a structured key):",
        "",
        "| key | required | what |",
        "|---|---|---|",
    ]
    external_stores = {key: store for store, key in EXTERNAL_STORE_SECRETS.items()}
    for key, what in EXTERNAL_SECRET_KEYS.items():
        if key in REQUIRED_OUTSIDE_DEV:
            required = "staging, production"
        elif key in external_stores:
            required = f"when data.{external_stores[key]}.mode is external"
        elif key in ALERTING_SECRETS:
            required = f"staging, production: {ALERTING_SECRETS[key]}"
        else:
            required = "when a build sets registryUsername"
        lines.append(f"| `{key}` | {required} | {what} |")
    lines += ["", END]
    return "\n".join(lines)


def document_with_reference(document: str) -> str:
    before, _, rest = document.partition(START)
    _, _, after = rest.partition(END)
    return before + render_reference() + after


if __name__ == "__main__":
    SCHEMA_PATH.parent.mkdir(exist_ok=True)
    SCHEMA_PATH.write_text(render())
    REFERENCE_PATH.write_text(document_with_reference(REFERENCE_PATH.read_text()))
    print(f"wrote {SCHEMA_PATH.relative_to(ROOT)} and the reference in {REFERENCE_PATH.relative_to(ROOT)}")
