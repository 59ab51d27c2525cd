"""Reads the stack's configuration from the Pulumi runtime: the one place that touches pulumi.Config."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from components.config import (
    EXTERNAL_SECRET_KEYS,
    PROJECT,
    STRUCTURED_KEYS,
    ConfigProblem,
    Settings,
    SettingsError,
    immutable_changes,
    load_settings,
)
from components.contracts import ExternalSecrets


def _configured_keys() -> set[str]:
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return {k for k in keys if k.startswith(f"{PROJECT}:")}


def _parse(value: Any) -> Any:
    # Structured values reach the program as JSON text; plain strings (environment: dev) do not parse.
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _is_secret(full_key: str) -> bool:
    return runtime_config.is_config_secret(full_key) or full_key in runtime_config.get_config_secret_keys_env()


def read_stack_config(stack: str, project_dir: str) -> tuple[Settings, ExternalSecrets]:
    """Validate the stack's config (build paths against `project_dir`); raises SettingsError listing every problem."""
    structured = {key: _parse(runtime_config.get_config(f"{PROJECT}:{key}")) for key in STRUCTURED_KEYS}
    known = {f"{PROJECT}:{k}" for k in (*STRUCTURED_KEYS, *EXTERNAL_SECRET_KEYS)}
    unknown = sorted(k.split(":", 1)[1] for k in _configured_keys() - known)
    external_state: dict[str, bool | None] = {}
    for key in EXTERNAL_SECRET_KEYS:
        full = f"{PROJECT}:{key}"
        external_state[key] = None if runtime_config.get_config(full) is None else _is_secret(full)
    settings = load_settings(stack, structured, unknown, external_state, project_dir)

    config = pulumi.Config(PROJECT)
    external = ExternalSecrets(
        llm_api_key=config.get_secret("llmApiKey"),
        alert_webhook_url=config.get_secret("alertWebhookUrl"),
        slack_webhook_url=config.get_secret("slackWebhookUrl"),
        smtp_password=config.get_secret("smtpPassword"),
        registry_password=config.get_secret("registryPassword"),
        postgres_password=config.get_secret("postgresPassword"),
        redis_password=config.get_secret("redisPassword"),
        chroma_token=config.get_secret("chromaToken"),
    )
    return settings, external


READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs"


def previous_outputs(stack: str) -> Mapping[str, Any] | None:
    """The outputs of this stack's last update ({} before the first one), read once before anything is
    registered; None when the engine cannot say."""
    name = f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}"
    try:
        value = pulumi.runtime.invoke(READ_STACK_OUTPUTS, {"name": name}).value or {}
    except Exception as error:
        # Never silently: the run goes on, but says which guards did not run.
        pulumi.log.warn(
            f"could not read the last update's dataShape and builtImages ({error}); storage changes are not "
            "checked, and the record of built images starts again"
        )
        return None
    outputs = value.get("outputs") or {}
    return outputs if isinstance(outputs, Mapping) else {}


def previous_data_shape(outputs: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The `dataShape` of the last update's outputs: what the deployed StatefulSets and claims look like."""
    shape = (outputs or {}).get("dataShape")
    return shape if isinstance(shape, Mapping) else {}


def check_data_changes(stack: str, settings: Settings, previous: Mapping[str, Any]) -> None:
    """Raise SettingsError for changes to deployed stores that Kubernetes cannot apply in place."""
    problems = [
        ConfigProblem(f"{PROJECT}:{path}", message) for path, message in immutable_changes(previous, settings.data)
    ]
    if problems:
        raise SettingsError(stack, problems)
