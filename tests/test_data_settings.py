"""Bad data-tier settings stop the program before anything is registered, naming the config key; so
does a change the deployed StatefulSets and claims cannot take, found against the last update's
`dataShape` (read through a mocked `pulumi:pulumi:readStackOutputs`)."""

from __future__ import annotations

import functools
import logging
from typing import Any

import pulumi
import pytest

from components.config import DataSettings, data_shape, immutable_changes
from components.runtime_config import READ_STACK_OUTPUTS
from tests.harness import PROJECT, ProgramRun, overlay, raw_stack_value, stack_config
from tests.test_data_tier import EXTERNAL_PG, DataMocks, run_data

PG_PASSWORD = {"postgresPassword": "pgpass-test-0f1e2d3c4b5a6978"}
UNDIGESTED = "docker.io/library/postgres:17.11-bookworm"


def app_with(stack: str, patch: dict[str, Any]) -> dict[str, Any]:
    return overlay(raw_stack_value(stack, "app"), patch)


def data(**stores: Any) -> dict[str, Any]:
    return {"data": stores}


# (id, stack, config overrides, secret config, plaintext config, expected path, expected text)
BAD_DATA: list[tuple[str, str, dict[str, Any], dict[str, str], dict[str, str], str, str]] = [
    (
        "size-in-gigabytes",
        "dev",
        data(postgres={"storage": {"size": "20GB"}}),
        {},
        {},
        "data.postgres.storage.size",
        "'20GB' is not a valid storage size; example: 20Gi",
    ),
    (
        "size-zero",
        "dev",
        data(redis={"storage": {"size": "0Gi"}}),
        {},
        {},
        "data.redis.storage.size",
        "'0Gi' is not a valid storage size",
    ),
    (
        "backup-size-fraction",
        "dev",
        data(postgres={"backup": {"storage": {"size": "1.5Gi"}}}),
        {},
        {},
        "data.postgres.backup.storage.size",
        "'1.5Gi' is not a valid storage size",
    ),
    (
        "storage-class-not-a-name",
        "dev",
        data(chroma={"storage": {"size": "10Gi", "storageClass": "Fast_SSD"}}),
        {},
        {},
        "data.chroma.storage.storageClass",
        "'Fast_SSD' is not a valid DNS name",
    ),
    (
        "external-without-external-block",
        "dev",
        data(postgres={"mode": "external"}),
        PG_PASSWORD,
        {},
        "data.postgres.external",
        "mode 'external' needs external.host, external.port and external.cidr",
    ),
    (
        "external-redis-without-external-block",
        "staging",
        data(redis={"mode": "external"}),
        {"redisPassword": "redispass-test-0f1e2d3c4b5a6978"},
        {},
        "data.redis.external",
        "mode 'external' needs external.host",
    ),
    (
        "external-without-password",
        "dev",
        data(postgres={"mode": "external", "external": EXTERNAL_PG}),
        {},
        {},
        "postgresPassword",
        "data.postgres.mode is external, so its credential is needed: run "
        "`pulumi config set --secret postgresPassword`",
    ),
    (
        "external-redis-without-password",
        "production",
        data(redis={"mode": "external", "external": {**EXTERNAL_PG, "port": 6380}}),
        {},
        {},
        "redisPassword",
        "run `pulumi config set --secret redisPassword`",
    ),
    (
        "external-chroma-without-token",
        "staging",
        data(chroma={"mode": "external", "external": {**EXTERNAL_PG, "port": 443}}),
        {},
        {},
        "chromaToken",
        "run `pulumi config set --secret chromaToken`",
    ),
    (
        "external-password-in-plaintext",
        "dev",
        data(postgres={"mode": "external", "external": EXTERNAL_PG}),
        {},
        PG_PASSWORD,
        "postgresPassword",
        "is set in plaintext; remove it and run `pulumi config set --secret postgresPassword`",
    ),
    (
        "external-cidr-invalid",
        "dev",
        data(postgres={"mode": "external", "external": {**EXTERNAL_PG, "cidr": "10.20.0.0/33"}}),
        PG_PASSWORD,
        {},
        "data.postgres.external.cidr",
        "'10.20.0.0/33' is not a CIDR block",
    ),
    (
        "unknown-mode",
        "dev",
        data(redis={"mode": "managed"}),
        {},
        {},
        "data.redis.mode",
        "'in-cluster', 'external' or 'disabled'",
    ),
    (
        "retention-zero",
        "dev",
        data(postgres={"backup": {"retentionDays": 0}}),
        {},
        {},
        "data.postgres.backup.retentionDays",
        "greater than or equal to 1 (got 0)",
    ),
    (
        "backup-schedule-not-cron",
        "dev",
        data(postgres={"backup": {"schedule": "nightly"}}),
        {},
        {},
        "data.postgres.backup.schedule",
        "'nightly' is not a valid cron schedule (five fields)",
    ),
    (
        "postgres-replicas-zero",
        "dev",
        data(postgres={"replicas": 0}),
        {},
        {},
        "data.postgres.replicas",
        "greater than or equal to 1 (got 0)",
    ),
    (
        "postgres-replicas-two",
        "staging",
        data(postgres={"replicas": 2}),
        {},
        {},
        "data.postgres.replicas",
        "less than or equal to 1 (got 2)",
    ),
    (
        "redis-replicas-two",
        "dev",
        data(redis={"replicas": 2}),
        {},
        {},
        "data.redis.replicas",
        "less than or equal to 1 (got 2)",
    ),
    (
        "chroma-replicas-zero",
        "dev",
        data(chroma={"replicas": 0}),
        {},
        {},
        "data.chroma.replicas",
        "greater than or equal to 1 (got 0)",
    ),
    (
        "connects-to-disabled-store",
        "dev",
        data(redis={"mode": "disabled"}),
        {},
        {},
        "app.services.api.connectsTo",
        "'api' connects to redis, which data.redis.mode disables; remove redis from connectsTo and drop the "
        "secretEnv that uses it (e.g. `REDIS_URL: null`), or enable the store",
    ),
    (
        "worker-connects-to-disabled-store",
        "dev",
        {
            **data(chroma={"mode": "disabled"}),
            "app": app_with(
                "dev",
                {
                    "services": {
                        "api": {"connectsTo": ["postgres", "redis", "llm"], "secretEnv": {"CHROMA_TOKEN": None}},
                        "agent": {"enabled": True, "image": "ghcr.io/support-platform/api:1.4.0"},
                    }
                },
            ),
        },
        {},
        {},
        "app.services.agent.connectsTo",
        "'agent' connects to chroma, which data.chroma.mode disables",
    ),
    (
        # Settings refuse a credential whose store is not in connectsTo before the store's mode is
        # looked at: the service-level rule names the secretEnv key.
        "secret-env-of-a-disabled-store",
        "dev",
        {
            **data(redis={"mode": "disabled"}),
            "app": app_with("dev", {"services": {"api": {"connectsTo": ["postgres", "chroma", "llm"]}}}),
        },
        {},
        {},
        "app.services.api.secretEnv.REDIS_URL",
        "credential 'redisUrl' is for redis, which connectsTo does not declare",
    ),
    (
        "migrations-run-by-a-service-without-postgres",
        "dev",
        data(postgres={"migrations": {"service": "web"}}),
        {},
        {},
        "data.postgres.migrations.service",
        "'web' must be an enabled service that connects to postgres",
    ),
    (
        "migrations-run-by-a-disabled-service",
        "staging",
        data(postgres={"migrations": {"service": "mcp"}}),
        {},
        {},
        "data.postgres.migrations.service",
        "'mcp' must be an enabled service that connects to postgres",
    ),
    (
        "migration-timeout-too-short",
        "dev",
        data(postgres={"migrations": {"timeoutSeconds": 10}}),
        {},
        {},
        "data.postgres.migrations.timeoutSeconds",
        "greater than or equal to 60",
    ),
    (
        "production-postgres-image-by-tag",
        "production",
        data(postgres={"image": UNDIGESTED}),
        {},
        {},
        "data.postgres.image",
        f"production requires an image pinned by digest, got '{UNDIGESTED}'",
    ),
    (
        "production-exporter-image-by-tag",
        "production",
        data(redis={"exporter": {"image": "docker.io/oliver006/redis_exporter:v1.74.0"}}),
        {},
        {},
        "data.redis.exporter.image",
        "production requires an image pinned by digest",
    ),
    (
        "production-chroma-image-by-tag",
        "production",
        data(chroma={"image": "docker.io/chromadb/chroma:1.5.9"}),
        {},
        {},
        "data.chroma.image",
        "production requires an image pinned by digest",
    ),
    (
        "snapshot-class-not-a-dns-name",
        "dev",
        data(chroma={"snapshots": {"volumeSnapshotClass": "CSI_Snapshots"}}),
        {},
        {},
        "data.chroma.snapshots.volumeSnapshotClass",
        "'CSI_Snapshots' is not a valid DNS name",
    ),
    (
        "snapshot-keep-zero",
        "dev",
        data(chroma={"snapshots": {"volumeSnapshotClass": "csi-snapshots", "keep": 0}}),
        {},
        {},
        "data.chroma.snapshots.keep",
        "greater than or equal to 1 (got 0)",
    ),
    (
        "snapshot-schedule-not-cron",
        "dev",
        data(chroma={"snapshots": {"volumeSnapshotClass": "csi-snapshots", "schedule": "@nightly"}}),
        {},
        {},
        "data.chroma.snapshots.schedule",
        "'@nightly' is not a valid cron schedule (five fields)",
    ),
    (
        "production-snapshot-image-by-tag",
        "production",
        data(chroma={"snapshots": {"volumeSnapshotClass": "csi-snapshots", "image": "docker.io/alpine/k8s:1.34.1"}}),
        {},
        {},
        "data.chroma.snapshots.image",
        "production requires an image pinned by digest, got 'docker.io/alpine/k8s:1.34.1'",
    ),
    (
        "image-not-a-reference",
        "dev",
        data(redis={"image": "redis 7"}),
        {},
        {},
        "data.redis.image",
        "'redis 7' is not an image reference",
    ),
    (
        "redis-maxmemory-above-80-percent-of-the-limit",
        "dev",
        data(redis={"maxmemory": "450Mi"}),
        {},
        {},
        "data.redis.maxmemory",
        "450Mi leaves too little of the 512Mi memory limit for the AOF rewrite fork and buffers; keep it at "
        "most 80 % of resources.limits.memory",
    ),
    (
        "redis-maxmemory-above-a-lowered-limit",
        "dev",
        data(redis={"resources": {"limits": {"memory": "256Mi"}, "requests": {"memory": "256Mi"}}}),
        {},
        {},
        "data.redis.maxmemory",
        "256Mi leaves too little of the 256Mi memory limit",
    ),
    (
        "reserved-postgres-parameter",
        "dev",
        data(postgres={"parameters": {"port": 5433}}),
        {},
        {},
        "data.postgres.parameters",
        "'port' is set by the platform (listening, sockets, files and authentication); remove it",
    ),
    (
        "postgres-parameter-not-a-name",
        "dev",
        data(postgres={"parameters": {"Max-Connections": 10}}),
        {},
        {},
        "data.postgres.parameters",
        "'Max-Connections' is not a PostgreSQL parameter name",
    ),
    (
        "data-namespace-is-the-app-namespace",
        "dev",
        data(namespace="support-app"),
        {},
        {},
        "data.namespace",
        "'support-app' is already the app's or monitoring's namespace; the stores need their own",
    ),
    (
        "data-namespace-is-the-monitoring-namespace",
        "production",
        data(namespace="support-monitoring"),
        {},
        {},
        "data.namespace",
        "'support-monitoring' is already the app's or monitoring's namespace",
    ),
    (
        "priority-zero",
        "dev",
        data(priority=0),
        {},
        {},
        "data.priority",
        "greater than or equal to 1",
    ),
    (
        "unknown-store-key",
        "dev",
        data(postgres={"sise": "20Gi"}),
        {},
        {},
        "data.postgres.sise",
        "unknown key; allowed keys here: adminConnections, backup, database, exporter, external, image, migrations, "
        "mode, parameters, pooler, replicas, resources, storage, user",
    ),
]


def problem_line(run: ProgramRun, path: str) -> str:
    assert isinstance(run.error, pulumi.RunError), run.error
    message = str(run.error)
    line = next((ln for ln in message.splitlines() if ln.startswith(f"  - {PROJECT}:{path}: ")), None)
    assert line is not None, f"no line for {path} in:\n{message}"
    assert f"Pulumi.{run.stack}.yaml" in message
    return line


@pytest.mark.parametrize(
    ("stack", "overrides", "secrets", "plaintext", "path", "text"),
    [case[1:] for case in BAD_DATA],
    ids=[case[0] for case in BAD_DATA],
)
def test_bad_data_settings_are_reported_by_key_and_register_nothing(
    stack: str,
    overrides: dict[str, Any],
    secrets: dict[str, str],
    plaintext: dict[str, str],
    path: str,
    text: str,
) -> None:
    config, secret_keys = stack_config(stack, overrides=overrides, secrets=secrets, plaintext=plaintext)
    run, mocks = run_data(stack, config, secret_keys)
    line = problem_line(run, path)
    assert text in line, line
    assert run.resources == [], [r.name for r in run.resources]
    # Settings fail first: the last update's outputs are not even asked for.
    assert mocks.calls == []


def test_every_data_problem_is_reported_at_once() -> None:
    overrides = data(
        postgres={"storage": {"size": "20GB"}, "replicas": 2, "backup": {"retentionDays": 0}},
        redis={"storage": {"size": "0Gi"}},
    )
    config, secret_keys = stack_config("dev", overrides=overrides)
    run, _ = run_data("dev", config, secret_keys)
    assert isinstance(run.error, pulumi.RunError)
    paths = {ln[4:].split(": ", 1)[0] for ln in str(run.error).splitlines() if ln.startswith("  - ")}
    assert paths == {
        f"{PROJECT}:data.postgres.storage.size",
        f"{PROJECT}:data.postgres.replicas",
        f"{PROJECT}:data.postgres.backup.retentionDays",
        f"{PROJECT}:data.redis.storage.size",
    }
    assert run.resources == []


def test_a_disabled_store_with_nothing_connecting_to_it_is_fine() -> None:
    app = app_with(
        "dev", {"services": {"api": {"connectsTo": ["postgres", "chroma", "llm"], "secretEnv": {"REDIS_URL": None}}}}
    )
    config, secret_keys = stack_config("dev", overrides={"app": app, **data(redis={"mode": "disabled"})})
    run, _ = run_data("dev", config, secret_keys)
    assert run.error is None, run.error
    assert not [r for r in run.k8s("StatefulSet") if r.get("metadata.name") == "redis"]
    assert "redis" not in run.outputs["dataEndpoints"]


def test_production_pins_only_the_images_it_deploys() -> None:
    # A managed PostgreSQL runs no image of ours: its (unused) image setting is not held to digests.
    overrides = data(postgres={"mode": "external", "external": EXTERNAL_PG, "image": UNDIGESTED})
    config, secret_keys = stack_config("production", overrides=overrides, secrets=PG_PASSWORD)
    run, _ = run_data("production", config, secret_keys)
    assert run.error is None, run.error


# --- bugs: settings that pass validation but fail inside a component ---------------------------


@pytest.mark.parametrize("parameter", ["password_encryption", "logging_collector", "log_destination", "ident_file"])
def test_every_parameter_the_renderer_refuses_is_a_settings_error(parameter: str) -> None:
    config, secret_keys = stack_config("dev", overrides=data(postgres={"parameters": {parameter: "x"}}))
    run, _ = run_data("dev", config, secret_keys)
    assert f"'{parameter}' is set by the platform" in problem_line(run, "data.postgres.parameters")
    assert run.resources == []


@pytest.mark.parametrize("maxmemory", ["0", "0Mi"])
def test_redis_maxmemory_must_be_positive(maxmemory: str) -> None:
    config, secret_keys = stack_config("dev", overrides=data(redis={"maxmemory": maxmemory}))
    run, _ = run_data("dev", config, secret_keys)
    problem_line(run, "data.redis.maxmemory")
    assert run.resources == []


# --- changes Kubernetes cannot apply to what is deployed ---------------------------------------

DEPLOYED = data_shape(DataSettings())


def shape_with(store: str, **changes: Any) -> dict[str, Any]:
    """The default stack's deployed dataShape, with `store`'s entry changed."""
    stores = {name: dict(entry) for name, entry in DEPLOYED["stores"].items()}
    stores[store].update(changes)
    return {"namespace": DEPLOYED["namespace"], "stores": stores}


def settings(**stores: Any) -> DataSettings:
    return DataSettings.model_validate(stores)


def test_an_unchanged_shape_and_a_first_deployment_have_no_problems() -> None:
    assert immutable_changes(DEPLOYED, DataSettings()) == []
    assert immutable_changes({}, DataSettings()) == []
    assert immutable_changes({"namespace": "elsewhere", "stores": {}}, DataSettings()) == []
    # A store that was not in-cluster before has no claims to keep.
    assert immutable_changes(shape_with("redis", size="1Gi"), settings(redis={"mode": "disabled"})) == []


def test_shrinking_a_volume_is_refused() -> None:
    ((path, message),) = immutable_changes(shape_with("postgres", size="50Gi"), DataSettings())
    assert path == "data.postgres.storage.size"
    assert message.startswith("20Gi is smaller than the deployed 50Gi: Kubernetes cannot shrink a volume")
    assert message.endswith("Keep 50Gi")


def test_growing_a_volume_is_refused_with_the_kubectl_patch_that_does_it() -> None:
    ((path, message),) = immutable_changes(shape_with("redis", size="1Gi"), DataSettings())
    assert path == "data.redis.storage.size"
    assert "volumeClaimTemplates cannot change in place" in message
    assert "Keep 1Gi here and resize the claim instead" in message
    assert "kubectl --namespace support-data patch pvc data-redis-0" in message
    assert '\'{"spec":{"resources":{"requests":{"storage":"5Gi"}}}}\'' in message
    # The same quantity in another unit is a change of text, not of size: still not the template's.
    ((path, _),) = immutable_changes(shape_with("chroma", size="10240Mi"), DataSettings())
    assert path == "data.chroma.storage.size"


def test_a_storage_class_change_is_refused() -> None:
    ((path, message),) = immutable_changes(shape_with("chroma", storageClass="standard"), DataSettings())
    assert path == "data.chroma.storage.storageClass"
    assert "the deployed claims use 'standard'; a claim cannot move to another class" in message
    ((path, message),) = immutable_changes(
        DEPLOYED, settings(postgres={"storage": {"size": "20Gi", "storageClass": "fast-ssd"}})
    )
    assert path == "data.postgres.storage.storageClass"
    assert "the deployed claims use 'the default class'" in message


def test_the_backup_volume_may_grow_but_not_shrink_or_change_class() -> None:
    assert immutable_changes(shape_with("postgres", backupSize="10Gi"), DataSettings()) == []
    ((path, message),) = immutable_changes(shape_with("postgres", backupSize="40Gi"), DataSettings())
    assert path == "data.postgres.backup.storage.size"
    assert "20Gi is smaller than the deployed 40Gi" in message
    ((path, _),) = immutable_changes(shape_with("postgres", backupStorageClass="standard"), DataSettings())
    assert path == "data.postgres.backup.storage.storageClass"


def test_moving_the_data_namespace_is_refused() -> None:
    problems = immutable_changes(DEPLOYED, settings(namespace="support-stores"))
    assert [path for path, _ in problems] == ["data.namespace"]
    assert "was 'support-data', where the stores keep their volumes" in problems[0][1]
    assert "Keep 'support-data'" in problems[0][1]


def test_several_changes_are_reported_together() -> None:
    previous = shape_with("postgres", size="50Gi", storageClass="standard")
    paths = [path for path, _ in immutable_changes(previous, settings(redis={"storage": {"size": "8Gi"}}))]
    assert paths == ["data.postgres.storage.size", "data.postgres.storage.storageClass", "data.redis.storage.size"]
    previous = {**shape_with("redis", size="1Gi"), "namespace": "old-data"}
    paths = [path for path, _ in immutable_changes(previous, DataSettings())]
    assert paths == ["data.namespace", "data.redis.storage.size"]


# The same refusals from the program: the mocked engine answers readStackOutputs with a previous shape.
# (id, stack, previous dataShape, data overrides, expected path, expected text)
DEPLOYED_CHANGES: list[tuple[str, str, dict[str, Any], dict[str, Any], str, str]] = [
    (
        "shrink",
        "production",
        shape_with("postgres", size="50Gi"),
        {},
        "data.postgres.storage.size",
        "20Gi is smaller than the deployed 50Gi",
    ),
    (
        "growth",
        "staging",
        DEPLOYED,
        {"redis": {"storage": {"size": "10Gi"}}},
        "data.redis.storage.size",
        "kubectl --namespace support-data patch pvc data-redis-0",
    ),
    (
        "storage-class",
        "dev",
        shape_with("chroma", storageClass="standard"),
        {},
        "data.chroma.storage.storageClass",
        "the deployed claims use 'standard'",
    ),
    (
        "backup-shrink",
        "production",
        DEPLOYED,
        {"postgres": {"backup": {"storage": {"size": "5Gi"}}}},
        "data.postgres.backup.storage.size",
        "5Gi is smaller than the deployed 20Gi",
    ),
    (
        "namespace-move",
        "staging",
        DEPLOYED,
        {"namespace": "support-stores"},
        "data.namespace",
        "was 'support-data'",
    ),
]


@pytest.mark.parametrize(
    ("stack", "previous", "overrides", "path", "text"),
    [case[1:] for case in DEPLOYED_CHANGES],
    ids=[case[0] for case in DEPLOYED_CHANGES],
)
def test_a_change_to_the_deployed_shape_stops_the_program_before_anything_is_registered(
    stack: str, previous: dict[str, Any], overrides: dict[str, Any], path: str, text: str
) -> None:
    config, secret_keys = stack_config(stack, overrides=data(**overrides) if overrides else None)
    run, mocks = run_data(stack, config, secret_keys, DataMocks(previous=previous))
    line = problem_line(run, path)
    assert text in line, line
    assert run.resources == [], [r.name for r in run.resources]
    ((token, args),) = mocks.calls
    assert token == READ_STACK_OUTPUTS
    assert args["name"].endswith(f"/{PROJECT}/{stack}")


@functools.cache
def unchanged_run(stack: str) -> ProgramRun:
    config, secret_keys = stack_config(stack)
    run, _ = run_data(stack, config, secret_keys, DataMocks(previous=DEPLOYED))
    return run


@pytest.mark.parametrize("stack", ["dev", "production"])
def test_the_deployed_shape_itself_passes(stack: str) -> None:
    run = unchanged_run(stack)
    assert run.error is None, run.error
    assert run.outputs["dataShape"] == DEPLOYED


def test_a_failed_read_of_the_last_outputs_warns_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    config, secret_keys = stack_config("dev", overrides=data(postgres={"storage": {"size": "1Gi"}}))
    with caplog.at_level(logging.WARNING):
        run, mocks = run_data("dev", config, secret_keys, DataMocks(previous=DEPLOYED, failure="stack not found"))
    assert run.error is None, run.error
    assert [token for token, _ in mocks.calls] == [READ_STACK_OUTPUTS]
    assert "could not read the last update's dataShape" in caplog.text
    assert "storage changes are not checked" in caplog.text
    assert run.resources
