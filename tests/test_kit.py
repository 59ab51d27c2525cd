"""The component kit and the contracts on their own: the context's options, the network vocabulary,
the workload spec, the one quantity parser, the production defaults settings decide, and what the
app tier declares to the others."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pulumi
import pytest

from components.app import tier as app_tier
from components.config import (
    AppSettings,
    NetworkSettings,
    Settings,
    cpu_millicores,
    memory_bytes,
    parse_quantity,
    quantity_bytes,
)
from components.config.builtin_services import _with_service_defaults
from components.contracts import DataEndpoint
from components.kit import network, workload
from components.kit.context import TierContext
from components.kit.objects import workload_kit

INSTANCE = "support-platform-test"


def app_settings(**services: Any) -> AppSettings:
    images = {name: {"image": "ghcr.io/acme/x:1.0"} for name in ("api", "web")}
    raw = _with_service_defaults({"services": {**images, **services}})
    return AppSettings.model_validate(raw)


def settings(environment: str, data: dict[str, Any] | None = None) -> Settings:
    return Settings.model_validate(
        {
            "environment": environment,
            "target": {"mode": "render", "renderDirectory": "rendered/x"}
            if environment == "dev"
            else {"mode": "cluster", "context": "c"},
            "app": _with_service_defaults(
                {"services": {"api": {"image": "ghcr.io/a/api:1"}, "web": {"image": "ghcr.io/a/web:1"}}}
            ),
            "edge": {"hosts": ["support.example.com"], "tls": {"issuer": "le"}} if environment == "production" else {},
            "data": data or {},
        }
    )


class FakeResource(pulumi.CustomResource):
    def __init__(self) -> None:  # a stand-in that registers nothing
        pass


@pytest.mark.parametrize("protect", [True, False])
def test_only_stateful_resources_take_the_protect_decision(protect: bool) -> None:
    namespace = FakeResource()
    ctx = TierContext(INSTANCE, "1", NetworkSettings(), protect=protect, after=(namespace,))
    parent, other = FakeResource(), FakeResource()
    plain = ctx.options(parent, other)
    assert plain.parent is parent and plain.depends_on == [namespace, other]
    assert plain.protect is None and plain.retain_on_delete is None
    stateful = ctx.options(parent, stateful=True)
    assert (stateful.protect, stateful.retain_on_delete) == (protect, protect)
    assert ctx.waiting_for(other).after == (namespace, other)


def test_a_store_is_reached_by_its_pods_in_cluster_and_by_its_cidr_outside() -> None:
    inside = DataEndpoint("postgres", "h", 5432, "support-data", None, pod_selector={"app": "pg"})
    outside = DataEndpoint("postgres", "db.example.com", 5432, None, "10.9.0.0/24")
    assert network.peer(inside) == {
        "namespace_selector": {"match_labels": {network.NAMESPACE_NAME_LABEL: "support-data"}},
        "pod_selector": {"match_labels": {"app": "pg"}},
    }
    assert network.peer(outside) == {"ip_block": {"cidr": "10.9.0.0/24"}}
    policy = network.migration_policy_spec({"job": "m"}, outside)
    assert policy["ingress"] == [] and policy["egress"] == [{"to": [network.peer(outside)], "ports": network.tcp(5432)}]


def test_the_workload_kit_names_every_object_after_its_prefix() -> None:
    identity = workload.WorkloadIdentity("api", "ns", {"l": "v"}, {"s": "v"}, "api-env", "api-secrets", "api")
    kit = workload_kit("p", identity, {"http": 80}, {"pod_selector": {}}, env={"B": "2", "A": "1"}, secret_values={})
    assert [(m.logical, m.kind) for m in kit] == [
        ("p-serviceaccount", "ServiceAccount"),
        ("p-env", "ConfigMap"),
        ("p-secrets", "Secret"),
        ("p-service", "Service"),
        ("p-networkpolicy", "NetworkPolicy"),
    ]
    assert list(kit[1].fields["data"]) == ["A", "B"]
    assert kit[0].fields["automount_service_account_token"] is False
    headless = workload_kit("s", identity, {"db": 5}, None, headless=True)
    assert [m.logical for m in headless] == ["s-serviceaccount", "s-service", "s-headless"]
    assert headless[2].fields["spec"]["cluster_ip"] == "None"


def test_mounts_are_read_only_for_config_and_as_said_for_claims() -> None:
    pod: dict[str, Any] = {"containers": [{"volume_mounts": []}], "volumes": []}
    workload.mount(pod, "config", "/etc/x", {"config_map": {"name": "x"}})
    workload.mount(pod, "data", "/data", None)
    workload.mount(pod, "claim", "/c", None, read_only=False)
    assert pod["containers"][0]["volume_mounts"] == [
        {"name": "config", "mount_path": "/etc/x", "read_only": True},
        {"name": "data", "mount_path": "/data"},
        {"name": "claim", "mount_path": "/c", "read_only": False},
    ]
    assert pod["volumes"] == [{"name": "config", "config_map": {"name": "x"}}]


@pytest.mark.parametrize(
    ("quantity", "value"),
    [("250m", Decimal("0.25")), ("1.5Gi", Decimal(1536 * 2**20)), ("2", Decimal(2)), ("1E", Decimal(10**18))],
)
def test_one_quantity_parser_is_exact(quantity: str, value: Decimal) -> None:
    assert parse_quantity(quantity) == value


def test_cpu_memory_and_bytes_come_from_the_same_parser() -> None:
    assert cpu_millicores("250m") == 250 and cpu_millicores("1.5") == 1500
    assert memory_bytes("1.1Gi") == float(Decimal("1.1") * 2**30)
    assert quantity_bytes("256Mi") == 256 * 2**20
    with pytest.raises(ValueError, match="memory quantity"):
        quantity_bytes("100m")
    with pytest.raises(ValueError, match="Kubernetes quantity"):
        parse_quantity("1e3")


@pytest.mark.parametrize(
    ("environment", "data", "protects", "backs_up"),
    [
        ("dev", {}, False, False),
        ("production", {}, True, True),
        ("production", {"protect": False, "postgres": {"migrations": {"backupFirst": False}}}, False, False),
        ("staging", {"protect": True, "postgres": {"migrations": {"backupFirst": True}}}, True, True),
    ],
)
def test_production_defaults_are_decided_in_settings(
    environment: str, data: dict[str, Any], protects: bool, backs_up: bool
) -> None:
    decided = settings(environment, data)
    assert decided.protects_data() is protects
    assert decided.backs_up_before_migration() is backs_up
    assert decided.protects_monitoring() is (environment == "production")


def test_the_app_declares_its_clients_metrics_and_backends() -> None:
    app = app_settings(mcp={"enabled": True, "image": "ghcr.io/acme/mcp:1.0"})
    migrations = settings("dev").data.postgres.migrations
    clients = app_tier.declared_clients(app, migrations, "support-app", INSTANCE)
    assert [c.name for c in clients["postgres"]] == ["api", "mcp", "api-migrations"]
    assert [c.name for c in clients["redis"]] == ["api"]
    assert [c.name for c in app_tier.declared_clients(app, None, "support-app", INSTANCE)["postgres"]] == [
        "api",
        "mcp",
    ]
    assert [(e.component, e.port_number) for e in app_tier.metrics_endpoints(app, "support-app")] == [
        ("api", 8000),
        ("mcp", 8090),
    ]
    assert {n: (b.service, b.port) for n, b in app_tier.backends(app).items()} == {
        "api": ("api", 8000),
        "web": ("web", 8080),
    }
