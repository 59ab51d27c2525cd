"""Data and secrets: protect, secrets in ConfigMaps and env, explicit provider."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from support_policies import data_secrets as data

from .fixtures import (
    CONTAINER_LISTS,
    DEFAULT_PROVIDER_URN,
    EXPLICIT_PROVIDER_URN,
    POD_SPEC_PATHS,
    TYPES,
    WORKLOAD_KINDS,
    assert_finding,
    check_resource,
    container,
    metadata,
    simple,
    subject_label,
    with_container,
    workload,
)

SECRET = "hunter2-Xy9!"

# --- protect --------------------------------------------------------------------------------


def data_namespace(flag: str = "true") -> tuple[str, dict[str, Any]]:
    meta = metadata("data", namespace=None)
    meta["labels"]["support-platform.io/data"] = flag
    return TYPES["Namespace"], {"metadata": meta}


STATEFUL: dict[str, Callable[[], tuple[str, dict[str, Any]]]] = {
    "StatefulSet": lambda: workload("StatefulSet", replicas=1),
    "PersistentVolumeClaim": lambda: simple("PersistentVolumeClaim", spec={"accessModes": ["ReadWriteOnce"]}),
    "data Namespace": data_namespace,
}


@pytest.mark.parametrize("kind", list(STATEFUL))
def test_unprotected_stateful_resource_fails(kind: str) -> None:
    resource_type, props = STATEFUL[kind]()
    messages = check_resource(data.protect_stateful_resources, resource_type, props)
    assert_finding(
        messages,
        subject=f'{resource_type} "api"',
        path="opts.protect",
        found="false",
        fix="ResourceOptions(protect=True)",
    )
    assert check_resource(data.protect_stateful_resources, resource_type, props, protect=True) == []


def test_statefulset_deleting_its_volumes_fails() -> None:
    resource_type, props = workload("StatefulSet", replicas=1)
    props["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete", "whenScaled": "Retain"}
    messages = check_resource(data.protect_stateful_resources, resource_type, props, protect=True)
    assert_finding(
        messages,
        subject=subject_label("StatefulSet"),
        path="spec.persistentVolumeClaimRetentionPolicy.whenDeleted",
        found='"Delete"',
        fix="Retain",
    )


@pytest.mark.parametrize(
    "props",
    [workload("Deployment"), data_namespace("false"), simple("ConfigMap", data={})],
    ids=["deployment", "plain-namespace", "configmap"],
)
def test_stateless_resources_need_no_protect(props: tuple[str, dict[str, Any]]) -> None:
    assert check_resource(data.protect_stateful_resources, *props) == []


# --- ConfigMaps -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["DB_PASSWORD", "apiKey", "client_secret", "REDIS_AUTH_TOKEN", "jwt.secret"])
def test_secret_named_config_map_key_fails(key: str) -> None:
    resource_type, props = simple("ConfigMap", data={key: SECRET, "LOG_LEVEL": "info"})
    messages = check_resource(data.no_secrets_in_config_maps, resource_type, props)
    message = assert_finding(
        messages,
        subject=f'{TYPES["ConfigMap"]} "api"',
        path=f'data["{key}"]',
        found=f'"<redacted, {len(SECRET)} characters>"',
        fix="Kubernetes Secret",
    )
    assert SECRET not in message


@pytest.mark.parametrize(
    ("value", "found_part"),
    [
        ("postgresql://support:s3cr3t@postgres.data:5432/support", "postgresql://support:***@"),
        ("redis://:s3cr3t@redis.data:6379/0", "redis://:***@"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n", "<PEM private key>"),
        ("db:\n  host: postgres\n  password: s3cr3t\n", "password: <redacted, 6 characters>"),
        ("OPENAI=sk-" + "a" * 40, "sk-a..."),
    ],
    ids=["postgres-url", "redis-url", "pem", "embedded-yaml", "api-token"],
)
def test_secret_value_in_config_map_fails(value: str, found_part: str) -> None:
    resource_type, props = simple("ConfigMap", data={"settings": value})
    messages = check_resource(data.no_secrets_in_config_maps, resource_type, props)
    message = assert_finding(
        messages, subject=f'{TYPES["ConfigMap"]} "api"', path='data["settings"]', fix="Kubernetes Secret"
    )
    assert found_part in message
    assert "s3cr3t" not in message


def test_private_key_in_binary_data_fails() -> None:
    pem = base64.b64encode(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").decode()
    # A neutral key, so the decoded value is what is found (`tls.key` is refused by its name alone).
    resource_type, props = simple("ConfigMap", binaryData={"bundle": pem})
    messages = check_resource(data.no_secrets_in_config_maps, resource_type, props)
    assert_finding(
        messages, subject=f'{TYPES["ConfigMap"]} "api"', path='binaryData["bundle"]', found='"<PEM private key>"'
    )


def test_plain_configuration_passes() -> None:
    resource_type, props = simple(
        "ConfigMap",
        data={
            "DATABASE_URL": "postgresql://postgres.data:5432/support",
            "DB_PASSWORD_FILE": "/run/secrets/db/password",
            "DB_SECRET_NAME": "postgres-credentials",
            "TOKEN_TTL_SECONDS": "3600",
            "MAX_TOKENS": "4096",
            "nginx.conf": "server { listen 8080; location / { proxy_pass http://api:8000; } }",
            "grafana.ini": "[security]\nadmin_password = $__file{/etc/secrets/admin}\n",
        },
    )
    assert check_resource(data.no_secrets_in_config_maps, resource_type, props) == []


# --- env ------------------------------------------------------------------------------------

KINDS = pytest.mark.parametrize("kind", WORKLOAD_KINDS)
LISTS = pytest.mark.parametrize("list_name", CONTAINER_LISTS)


def with_env(kind: str, list_name: str, *env: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return with_container(kind, list_name, container("extra", list_name, env=list(env)))


def env_path(kind: str, list_name: str, name: str) -> str:
    return f"{POD_SPEC_PATHS[kind]}.{list_name}[extra].env[{name}]"


@KINDS
@LISTS
@pytest.mark.parametrize(
    "name", ["DB_PASSWORD", "API_KEY", "OPENAI_API_KEY", "GITHUB_TOKEN", "privateKey", "AWS_CREDENTIALS"]
)
def test_literal_secret_env_fails(kind: str, list_name: str, name: str) -> None:
    messages = check_resource(data.no_literal_secret_env, *with_env(kind, list_name, {"name": name, "value": SECRET}))
    message = assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{env_path(kind, list_name, name)}.value",
        found=f'"<redacted, {len(SECRET)} characters>"',
        fix="valueFrom.secretKeyRef",
    )
    assert SECRET not in message


@KINDS
@LISTS
def test_secret_env_from_config_map_fails(kind: str, list_name: str) -> None:
    entry = {"name": "DB_PASSWORD", "valueFrom": {"configMapKeyRef": {"name": "api", "key": "pw"}}}
    messages = check_resource(data.no_literal_secret_env, *with_env(kind, list_name, entry))
    assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{env_path(kind, list_name, 'DB_PASSWORD')}.valueFrom",
        found='"configMapKeyRef"',
        fix="secretKeyRef",
    )


@KINDS
@LISTS
@pytest.mark.parametrize("name", ["DATABASE_URL", "SENTRY_DSN", "CACHE"])
def test_credentials_in_any_literal_fail(kind: str, list_name: str, name: str) -> None:
    entry = {"name": name, "value": "postgresql://support:s3cr3t@postgres:5432/support"}
    messages = check_resource(data.no_literal_secret_env, *with_env(kind, list_name, entry))
    message = assert_finding(
        messages,
        subject=subject_label(kind),
        path=f"{env_path(kind, list_name, name)}.value",
        found='"postgresql://support:***@"',
        fix="secretKeyRef",
    )
    assert "s3cr3t" not in message


@KINDS
@LISTS
def test_secret_refs_and_plain_values_pass(kind: str, list_name: str) -> None:
    env: list[dict[str, Any]] = [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "DATABASE_URL", "value": "postgresql://postgres.data:5432/support"},
        {"name": "DB_PASSWORD_FILE", "value": "/run/secrets/db/password"},
        {"name": "API_TOKEN", "value": "$(TOKEN_FROM_VOLUME)"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "LOG_LEVEL", "value": "info"},
    ]
    assert check_resource(data.no_literal_secret_env, *with_env(kind, list_name, *env)) == []


# --- explicit provider ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Deployment", "Namespace", "ConfigMap", "HTTPRoute"])
def test_default_provider_fails(kind: str) -> None:
    props = workload(kind) if kind in WORKLOAD_KINDS else simple(kind)
    messages = check_resource(data.explicit_kubernetes_provider, *props, provider_urn=DEFAULT_PROVIDER_URN)
    assert_finding(
        messages,
        subject=f'{props[0]} "api"',
        path="opts.provider",
        found=f'"{DEFAULT_PROVIDER_URN}"',
        fix="ResourceOptions(provider=",
    )


def test_missing_provider_fails() -> None:
    messages = check_resource(data.explicit_kubernetes_provider, *workload("Deployment"), provider_urn=None)
    assert_finding(messages, subject=subject_label("Deployment"), path="opts.provider", found="<unset>")


def test_explicit_provider_and_components_pass() -> None:
    assert (
        check_resource(data.explicit_kubernetes_provider, *workload("Deployment"), provider_urn=EXPLICIT_PROVIDER_URN)
        == []
    )
    for component in ("kubernetes:helm.sh/v4:Chart", "kubernetes:yaml/v2:ConfigGroup"):
        assert check_resource(data.explicit_kubernetes_provider, component, {}, provider_urn=None) == []
    assert (
        check_resource(
            data.explicit_kubernetes_provider, "random:index/randomPassword:RandomPassword", {}, provider_urn=None
        )
        == []
    )
