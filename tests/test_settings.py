"""The settings model on its own: defaults, merging, formatting, and the schema editors use."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from components.config import (
    BUILTIN_SERVICES,
    ConfigProblem,
    SettingsError,
    cpu_millicores,
    deep_merge,
    load_settings,
    memory_bytes,
)
from scripts.export_schema import REFERENCE_PATH, SCHEMA_PATH, document_with_reference, render
from tests.harness import ROOT, STACKS, overlay

RENDER = {"mode": "render", "renderDirectory": "rendered/dev"}
IMAGES = {"services": {"api": {"image": "ghcr.io/a/api:1.0"}, "web": {"image": "ghcr.io/a/web:1.0"}}}


def load(stack: str = "dev", external: dict[str, bool | None] | None = None, **structured: Any):  # type: ignore[no-untyped-def]
    structured.setdefault("target", RENDER)
    structured.setdefault("app", IMAGES)
    return load_settings(stack, structured, [], external or {})


def problems(stack: str = "dev", **structured: Any) -> list[ConfigProblem]:
    with pytest.raises(SettingsError) as caught:
        load(stack, **structured)
    return caught.value.problems


def test_built_in_services_fill_in_what_a_stack_leaves_out() -> None:
    settings = load()
    api = settings.app.services["api"]
    assert api.ports == {"http": 8000}
    assert api.probes.readiness.path == "/health/readiness"
    assert api.secret_env["DATABASE_URL"] == "databaseUrl"
    assert settings.app.enabled_services().keys() == {"api", "web"}
    assert not settings.app.services["agent"].enabled


def test_defaults_apply_to_every_service_and_a_service_can_override_them() -> None:
    app = deep_merge(
        IMAGES,
        {
            "defaults": {"replicas": 2, "autoscaling": {"minReplicas": 2, "maxReplicas": 4}},
            "services": {"web": {"autoscaling": {"enabled": False}, "replicas": 3}},
        },
    )
    settings = load(app=app)
    api, web = settings.app.services["api"], settings.app.services["web"]
    assert (api.autoscaling.enabled, api.autoscaling.min_replicas, api.autoscaling.max_replicas) == (True, 2, 4)
    assert api.min_replicas == 2
    assert not web.autoscaling.enabled and web.replicas == 3 and web.min_replicas == 3


def test_stack_values_win_over_built_in_values_and_lists_replace() -> None:
    dropped = {"REDIS_URL": None, "CHROMA_TOKEN": None, "LLM_API_KEY": None}
    app = deep_merge(
        IMAGES,
        {"services": {"api": {"connectsTo": ["postgres"], "secretEnv": dropped, "env": {"X": 1, "LOG_FORMAT": None}}}},
    )
    api = load(app=app).app.services["api"]
    assert api.connects_to == ["postgres"]
    assert api.secret_env == {"DATABASE_URL": "databaseUrl", "SECRET_KEY": "secretKey"}
    # Maps merge: the built-in env stays, null removes, the number became a string.
    assert api.env["X"] == "1" and api.env["LOG_LEVEL"] == "INFO" and "LOG_FORMAT" not in api.env


def test_a_new_service_must_be_given_in_full() -> None:
    found = problems(app=deep_merge(IMAGES, {"services": {"billing": {"image": "ghcr.io/a/billing:1"}}}))
    paths = {p.path for p in found}
    assert {
        "support-platform:app.services.billing.component",
        "support-platform:app.services.billing.ports",
        "support-platform:app.services.billing.probes",
        "support-platform:app.services.billing.resources",
    } <= paths


def test_a_disabled_service_needs_no_image() -> None:
    assert "agent" not in load().app.enabled_services()


def test_external_secrets_are_optional_in_dev_and_required_elsewhere() -> None:
    load("dev", external={"llmApiKey": None, "alertWebhookUrl": None})
    with pytest.raises(SettingsError) as caught:
        load(
            "staging",
            target={"mode": "cluster", "context": "ctx"},
            external={"llmApiKey": None, "alertWebhookUrl": True},
        )
    assert [p.path for p in caught.value.problems] == ["support-platform:llmApiKey"]


def test_unknown_key_lists_the_keys_allowed_there() -> None:
    (problem,) = problems(data={"postgres": {"pasword": "x"}})
    assert problem.path == "support-platform:data.postgres.pasword"
    assert (
        "allowed keys here: adminConnections, backup, database, exporter, external, image, migrations,"
        in problem.message
    )


def test_external_store_needs_where_it_is() -> None:
    (problem,) = problems(data={"redis": {"mode": "external"}}, external={"redisPassword": True})
    assert problem.path == "support-platform:data.redis.external"
    assert "external.host, external.port and external.cidr" in problem.message
    (problem,) = problems(
        data={"chroma": {"mode": "external", "external": {"host": "c.example.com", "port": 443, "cidr": "nope"}}},
        external={"chromaToken": True},
    )
    assert problem.path == "support-platform:data.chroma.external.cidr" and "not a CIDR block" in problem.message


def test_a_partial_store_override_keeps_the_other_defaults() -> None:
    data = load(data={"postgres": {"storage": {"size": "50Gi"}, "parameters": {"max_connections": 300}}}).data
    assert data.postgres.storage.size == "50Gi"
    # Parameters merge over the defaults: one tuned value keeps the others.
    assert data.postgres.parameters["max_connections"] == 300 and data.postgres.parameters["shared_buffers"] == "256MB"
    assert data.postgres.backup.retention_days == 7 and data.redis.storage.size == "5Gi"


def test_kubeconfig_takes_a_path_never_contents() -> None:
    cluster = {"mode": "cluster", "context": "ctx", "kubeconfig": "apiVersion: v1\nclusters: []"}
    (problem,) = problems("dev", target=cluster)
    assert problem.path == "support-platform:target.kubeconfig" and "give the path of the file" in problem.message
    assert load("dev", target={**cluster, "kubeconfig": "/etc/support/kubeconfig"}).target.kubeconfig


def test_a_disabled_service_needs_no_digest_in_production() -> None:
    digest = "@sha256:" + "b" * 64
    app = overlay(IMAGES, {"services": {"agent": {"enabled": False, "image": "ghcr.io/a/agent:1.0"}}})
    app["services"]["api"]["image"] = "ghcr.io/a/api" + digest
    app["services"]["web"]["image"] = "ghcr.io/a/web" + digest
    settings = load(
        "production",
        target={"mode": "cluster", "context": "ctx"},
        edge={"hosts": ["support.example.com"], "tls": {"issuer": "le"}},
        app=app,
        # Not about monitoring, whose bundled images would need digests too.
        monitoring={"mode": "none"},
    )
    assert settings.app.services["agent"].image == "ghcr.io/a/agent:1.0"


def test_production_autoscaling_needs_two_replicas_minimum() -> None:
    app = deep_merge(IMAGES, {"defaults": {"autoscaling": {"minReplicas": 1, "maxReplicas": 3}}})
    digest = "@sha256:" + "b" * 64
    app["services"]["api"]["image"] = "ghcr.io/a/api" + digest
    app["services"]["web"]["image"] = "ghcr.io/a/web" + digest
    found = problems(
        "production",
        target={"mode": "cluster", "context": "ctx"},
        edge={"hosts": ["support.example.com"], "tls": {"issuer": "le"}},
        app=app,
    )
    # Reported once, where it was written, not once per inheriting service.
    assert [p.path for p in found if "minReplicas" in p.path] == [
        "support-platform:app.defaults.autoscaling.minReplicas"
    ]


@pytest.mark.parametrize(("value", "millicores"), [("250m", 250), ("1", 1000), ("0.5", 500), ("2", 2000)])
def test_cpu_quantities(value: str, millicores: float) -> None:
    assert cpu_millicores(value) == millicores


@pytest.mark.parametrize(("value", "size"), [("512Mi", 512 * 2**20), ("1Gi", 2**30), ("1G", 10**9), ("100", 100)])
def test_memory_quantities(value: str, size: float) -> None:
    assert memory_bytes(value) == size


def test_every_built_in_service_is_valid_on_its_own() -> None:
    images = {name: {"image": "ghcr.io/a/x:1.0", "enabled": True} for name in BUILTIN_SERVICES}
    settings = load(app={"services": images})
    assert set(settings.app.enabled_services()) == set(BUILTIN_SERVICES)


# --- the JSON schema of stack files ------------------------------------------------------------


def test_committed_schema_is_current() -> None:
    assert SCHEMA_PATH.read_text() == render(), "schema is stale: run `make schema`"


def test_configuration_reference_is_current() -> None:
    reference = REFERENCE_PATH.read_text()
    assert "| `app.services.<name>.image` |" in reference
    assert reference == document_with_reference(reference), "docs/configuration.md is stale: run `make schema`"


@pytest.mark.parametrize("stack", STACKS)
def test_stack_files_validate_against_the_schema(stack: str) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    jsonschema.validate(document, schema)


def test_schema_rejects_an_unknown_key() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    document = {"config": {"support-platform:app": {"servics": {}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)
