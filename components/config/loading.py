"""Reading stack config into Settings: every problem at once, each named by its config path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, get_args, get_origin

from pydantic import (
    BaseModel,
    ValidationError,
)

from components.config.base import (
    ENVIRONMENTS,
    EXTERNAL_SECRET_KEYS,
    PROJECT,
    REQUIRED_OUTSIDE_DEV,
    STRUCTURED_KEYS,
    deep_merge,
)
from components.config.builtin_services import _with_service_defaults
from components.config.data import EXTERNAL_STORE_SECRETS, DataSettings
from components.config.stack import Settings


class ConfigProblem:
    """One line of the settings report: a config path and what to do about it."""

    __slots__ = ("message", "path")

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self.path!r}, {self.message!r})"


class SettingsError(Exception):
    """Every problem of a stack's settings at once; __main__ turns it into a pulumi.RunError."""

    def __init__(self, stack: str, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"stack '{stack}' has {len(problems)} configuration problem(s); nothing was deployed:\n{lines}\n"
            f"Fix them in Pulumi.{stack}.yaml (or with `pulumi config set`); the keys and defaults are in "
            "docs/configuration.md and schema/stack-config.schema.json."
        )


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return sorted(field.alias or name for name, field in model.model_fields.items())


def _nested_model(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The model a field holds, and whether a mapping key (a service name) comes before it."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    args = get_args(annotation)
    if get_origin(annotation) is dict and len(args) == 2:
        inner = _nested_model(args[1])
        return (inner[0], True) if inner else None
    for arg in args:
        inner = _nested_model(arg)
        if inner:
            return inner
    return None


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class of the object at `loc`, to list the keys allowed there."""
    model: type[BaseModel] = Settings
    skip_key = False
    for part in loc:
        if skip_key:
            skip_key = False
            continue
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        nested = _nested_model(field.annotation) if field else None
        if nested is None:
            return None
        model, skip_key = nested
    return model


def _format_error(error: Mapping[str, Any]) -> ConfigProblem:
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and "[" in part))
    ctx = error.get("ctx") or {}
    if error["type"] == "cross_field":
        loc = loc + tuple(str(ctx["field"]).split("."))
    path = f"{PROJECT}:" + ".".join(str(p) for p in loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc[:-1])
        allowed = f"; allowed keys here: {', '.join(_allowed_keys(owner))}" if owner else ""
        message = f"unknown key{allowed}"
    elif kind == "missing":
        message = "required key is missing"
    else:
        found = error.get("input")
        # Our own messages quote the value already; pydantic's built-in ones do not.
        own = kind in ("cross_field", "format", "cidr", "host", "image", "secret_in_env", "unique")
        shown = "" if own or isinstance(found, Mapping | list) else f" (got {found!r})"
        message = f"{error['msg']}{shown}"
    return ConfigProblem(path, message)


def _problems_from(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        problems.append(_format_error({**error, "loc": prefix + tuple(error["loc"])}))
    return problems


def _once_where_written(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """A problem in app.defaults is inherited by every service; report it once, where it was written."""
    prefix = f"{PROJECT}:app.defaults."
    at_defaults = {(p.path[len(prefix) :], p.message) for p in problems if p.path.startswith(prefix)}
    service_path = re.compile(rf"^{re.escape(PROJECT)}:app\.services\.[^.]+\.(.+)$")

    def inherited(problem: ConfigProblem) -> bool:
        match = service_path.match(problem.path)
        return match is not None and (match.group(1), problem.message) in at_defaults

    return [p for p in problems if not inherited(p)]


def load_settings(
    stack: str,
    structured: Mapping[str, Any],
    unknown_keys: list[str],
    external_secrets: Mapping[str, bool | None],
    project_dir: str | None = None,
    *,
    pinned_images: bool = True,
) -> Settings:
    """Validate a stack's configuration.

    `structured` maps top-level keys (without the project prefix) to their parsed values;
    `unknown_keys` are project keys that are neither structured nor external secrets;
    `external_secrets` maps each external secret key to None (unset), False (set in plaintext) or
    True (set with --secret); `project_dir`, when given, is where build contexts must exist;
    `pinned_images=False` lifts production's "images pinned by digest" rule (for `make pin-images`).
    Raises SettingsError listing every problem.
    """
    problems: list[ConfigProblem] = [
        ConfigProblem(
            f"{PROJECT}:{key}",
            f"unknown key; allowed top-level keys: {', '.join(sorted(STRUCTURED_KEYS + tuple(EXTERNAL_SECRET_KEYS)))}",
        )
        for key in unknown_keys
    ]
    raw = {k: v for k, v in structured.items() if v is not None}
    if "environment" not in raw and stack in ENVIRONMENTS:
        raw["environment"] = stack
    environment = raw.get("environment")
    raw["app"] = _with_service_defaults(raw.get("app", {}))
    if isinstance(raw.get("data"), Mapping):
        # Like services: a stack states only what differs from the default endpoints.
        raw["data"] = deep_merge(DataSettings().model_dump(by_alias=True, exclude_none=True), raw["data"])
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(
            raw, context={"environment": environment, "project_dir": project_dir, "pinnedImages": pinned_images}
        )
    except ValidationError as exc:
        problems.extend(_problems_from(exc))

    for key, state in external_secrets.items():
        path = f"{PROJECT}:{key}"
        if state is False:
            problems.append(
                ConfigProblem(
                    path,
                    f"is set in plaintext; remove it and run `pulumi config set --secret {key}` "
                    f"({EXTERNAL_SECRET_KEYS[key]})",
                )
            )
        elif state is None and environment in ("staging", "production") and key in REQUIRED_OUTSIDE_DEV:
            problems.append(
                ConfigProblem(
                    path,
                    f"required in {environment}: run `pulumi config set --secret {key}` ({EXTERNAL_SECRET_KEYS[key]})",
                )
            )
    if settings is not None and external_secrets.get("registryPassword") is None:
        for name, build in settings.builds().items():
            if build.registry_username:
                problems.append(
                    ConfigProblem(
                        f"{PROJECT}:app.services.{name}.build.registryUsername",
                        "needs the registry password: run `pulumi config set --secret registryPassword`",
                    )
                )
    if settings is not None and environment in ("staging", "production"):
        for key, needed_by in settings.monitoring.required_secrets().items():
            if external_secrets.get(key) is None and key not in REQUIRED_OUTSIDE_DEV:
                problems.append(
                    ConfigProblem(
                        f"{PROJECT}:{key}",
                        f"required in {environment} by {needed_by}: run `pulumi config set --secret {key}` "
                        f"({EXTERNAL_SECRET_KEYS[key]})",
                    )
                )
    if settings is not None:
        for store, key in EXTERNAL_STORE_SECRETS.items():
            if settings.data.stores()[store].mode == "external" and external_secrets.get(key) is None:
                problems.append(
                    ConfigProblem(
                        f"{PROJECT}:{key}",
                        f"data.{store}.mode is external, so its credential is needed: run "
                        f"`pulumi config set --secret {key}`",
                    )
                )
    if problems or settings is None:
        raise SettingsError(stack, _once_where_written(problems))
    return settings


def stack_config_schema() -> dict[str, Any]:
    """JSON Schema of a `Pulumi.<stack>.yaml`, so editors validate stack files as they are typed."""
    full = Settings.model_json_schema(by_alias=True)
    properties: dict[str, Any] = {f"{PROJECT}:{key}": full["properties"][key] for key in STRUCTURED_KEYS}
    for key, description in EXTERNAL_SECRET_KEYS.items():
        properties[f"{PROJECT}:{key}"] = {
            "description": f"{description}; set with `pulumi config set --secret {key}`",
            "type": "object",
            "properties": {"secure": {"type": "string"}},
            "required": ["secure"],
            "additionalProperties": False,
        }
    # Services may omit what the built-in definitions provide, so their fields are not required.
    defs = full.get("$defs", {})
    for name in ("ServiceSettings", "AppSettings", "ProbesSettings"):
        defs.get(name, {}).pop("required", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Pulumi stack configuration of {PROJECT}",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": properties,
                "patternProperties": {r"^(?!support-platform:).+:.+$": {}},
                "additionalProperties": False,
            },
            "encryptionsalt": {"type": "string"},
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
        },
        "additionalProperties": False,
        "$defs": defs,
    }
