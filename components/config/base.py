"""Shared pieces of the settings model: constants, validated string types, the strict base model."""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

PROJECT = "support-platform"

Environment = Literal["dev", "staging", "production"]
ENVIRONMENTS: tuple[str, ...] = ("dev", "staging", "production")

# External secrets: set with `pulumi config set --secret <key>`, never in a structured object so that
# no plaintext settings read ever touches them.
EXTERNAL_SECRET_KEYS: dict[str, str] = {
    "llmApiKey": "API key of the LLM provider / agent framework",
    "alertWebhookUrl": "webhook URL Alertmanager posts alerts to",
    "slackWebhookUrl": "Slack incoming-webhook URL of the receivers with slack (monitoring.receivers.*.slack)",
    "smtpPassword": "password of monitoring.smtp.authUsername at the mail server of the e-mail receivers",
    "registryPassword": "password or token of the image registry used by service builds",
    "postgresPassword": "password of the managed PostgreSQL (data.postgres.mode external)",
    "redisPassword": "password of the managed Redis (data.redis.mode external)",
    "chromaToken": "bearer token of the managed Chroma (data.chroma.mode external)",
}
# Required outside dev; registryPassword only when a service builds its image.
REQUIRED_OUTSIDE_DEV = ("llmApiKey", "alertWebhookUrl")

STRUCTURED_KEYS = ("environment", "target", "namespaces", "secrets", "data", "edge", "network", "app", "monitoring")

# Credentials a service may receive through `secretEnv`, and the connection each one implies.
Credential = Literal["databaseUrl", "redisUrl", "chromaToken", "secretKey", "llmApiKey"]
CREDENTIAL_CONNECTION: dict[str, str | None] = {
    "databaseUrl": "postgres",
    "redisUrl": "redis",
    "chromaToken": "chroma",
    "secretKey": None,
    "llmApiKey": "llm",
}
DATA_SERVICES = ("postgres", "redis", "chroma")
EXTERNAL_CONNECTIONS = ("llm",)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CPU = re.compile(r"^(\d+(\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# repository[:tag][@sha256:digest]; the repository may carry a registry host with a port.
_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@sha256:[0-9a-f]{64})?$"
)
# Whole words of an env name: LLM_MAX_TOKENS is a count, ACCESS_TOKEN is a secret.
_SECRET_NAME = re.compile(
    r"(^|_)(PASSWORD|PASSWD|SECRET|SECRET_KEY|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIALS?|DSN)($|_)", re.IGNORECASE
)
_URL_WITH_CREDENTIALS = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def _check(pattern: re.Pattern[str], what: str, example: str, max_len: int | None = None) -> Any:
    def validate(value: str) -> str:
        if not pattern.match(value) or (max_len is not None and len(value) > max_len):
            limit = f", at most {max_len} characters" if max_len else ""
            raise PydanticCustomError(
                "format",
                "'{value}' is not a valid {what}{limit}; example: {example}",
                {"value": value, "what": what, "limit": limit, "example": example},
            )
        return value

    return AfterValidator(validate)


DnsLabel = Annotated[str, _check(_DNS_LABEL, "DNS label (lowercase letters, digits and '-')", "support-app", 63)]
DnsName = Annotated[str, _check(_DNS_NAME, "DNS name", "postgres.support-data.svc.cluster.local")]
PortName = Annotated[str, _check(_PORT_NAME, "port name (lowercase letters, digits, '-')", "http", 15)]
EnvName = Annotated[str, _check(_ENV_NAME, "environment variable name", "LOG_LEVEL")]
CpuQuantity = Annotated[str, _check(_CPU, "CPU quantity", "250m or 1")]
MemoryQuantity = Annotated[str, _check(_MEMORY, "memory quantity", "256Mi")]
Port = Annotated[int, Field(ge=1, le=65535)]
AbsolutePath = Annotated[str, Field(pattern=r"^/[^\s]*$")]
HttpPath = Annotated[str, Field(pattern=r"^/[^\s]*$")]


def _data_image(value: str) -> str:
    if not _IMAGE.match(value):
        raise PydanticCustomError(
            "format",
            "'{value}' is not an image reference; example: docker.io/library/postgres:17.11-bookworm",
            {"value": value},
        )
    return value


DataImage = Annotated[str, AfterValidator(_data_image)]


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value)
    except ValueError:
        raise PydanticCustomError(
            "cidr", "'{value}' is not a CIDR block; example: 10.0.0.0/8", {"value": value}
        ) from None
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]


def pins_required(info: ValidationInfo) -> bool:
    """Production deploys only images pinned by digest; `make pin-images` validates with the rule off
    (load_settings(pinned_images=False)), since finding what to pin is its job."""
    context = info.context or {}
    return context.get("environment") == "production" and context.get("pinnedImages", True)


def _cross_field(field: str, message: str, **ctx: Any) -> PydanticCustomError:
    # `field` is the sub-path below the model that failed; format_errors appends it to the location
    # so the message names the exact config path even for rules that involve several fields.
    return PydanticCustomError("cross_field", message, {"field": field, **ctx})


class _Strict(BaseModel):
    """Frozen, camelCase keys in config, unknown keys rejected."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        # The string under a field is its description: in the JSON schema and docs/configuration.md.
        use_attribute_docstrings=True,
    )


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any], drop_nulls: bool = True) -> dict[str, Any]:
    """Merge mappings recursively; lists and scalars in `override` replace those in `base`, and a
    null removes the key (as in Helm values), so a stack can drop a built-in env var or credential.
    With drop_nulls=False a null is kept as a value (an edit of a stack file that says null)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None and drop_nulls:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value, drop_nulls)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
