"""A workload in a namespace the stack does not create: its default deny is not visible to the
stack, so NetworkPolicies of the stack must restrict its pods in both directions."""

from __future__ import annotations

from typing import Any

import pytest

from support_policies import network_edge as edge
from support_policies.network_edge.network_policies import restricted_directions

from .fixtures import TYPES, check_stack, metadata, resource, selector, workload

FOREIGN = "shared-tools"


def deployment(namespace: str = FOREIGN) -> Any:
    return resource(*workload("Deployment", namespace=namespace), "api")


def namespace(name: str) -> Any:
    return resource(TYPES["Namespace"], {"metadata": metadata(name, namespace=None)}, f"ns-{name}")


def policy(logical: str, spec: dict[str, Any], namespace: str = FOREIGN) -> Any:
    return resource(TYPES["NetworkPolicy"], {"metadata": metadata(logical, namespace), "spec": spec}, logical)


def own(types: list[str], **rules: Any) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": selector("api")}, "policyTypes": types, **rules}


WEB = [{"podSelector": {"matchLabels": selector("web")}}]
PORT = [{"protocol": "TCP", "port": 8000}]
RESTRICTED = own(["Ingress", "Egress"], ingress=[{"from": WEB, "ports": PORT}], egress=[{"to": WEB, "ports": PORT}])


def findings(*resources: Any) -> list[str]:
    return [
        message for name, message in check_stack(edge.default_deny_network_policy, list(resources)) if name == "api"
    ]


@pytest.mark.parametrize(
    ("policies", "open_directions"),
    [
        ([], "Ingress and Egress"),
        # The case: a policy that leaves egress open.
        ([policy("api", own(["Ingress"], ingress=[{"from": WEB, "ports": PORT}]))], "Egress"),
        ([policy("api", own(["Ingress", "Egress"], egress=[{}]))], "Egress"),  # an allow-everything rule
        (
            [policy("api", own(["Ingress", "Egress"], egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]))],
            "Egress",
        ),
        ([policy("other", {**RESTRICTED, "podSelector": {"matchLabels": selector("web")}})], "Ingress and Egress"),
        ([policy("api", RESTRICTED, namespace="elsewhere")], "Ingress and Egress"),
        # Allowances add up: a second policy that opens egress opens it.
        ([policy("api", RESTRICTED), policy("api-open", own(["Egress"], egress=[{}]))], "Egress"),
    ],
)
def test_a_workload_in_a_foreign_namespace_must_be_restricted_both_ways(
    policies: list[Any], open_directions: str
) -> None:
    messages = findings(deployment(), *policies)
    assert len(messages) == 1, messages
    assert f'namespace "{FOREIGN}" is not created by this stack' in messages[0]
    assert f"and {open_directions} traffic of these pods is not restricted" in messages[0]
    assert "Fix: add a NetworkPolicy" in messages[0]


@pytest.mark.parametrize(
    "policies",
    [
        [policy("api", RESTRICTED)],
        [policy("api-in", own(["Ingress"])), policy("api-out", own(["Egress"], egress=[{"to": WEB, "ports": PORT}]))],
        [policy("deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})],
        # The namespace's default deny for one direction, the workload's own policy for the other.
        [policy("deny-in", {"podSelector": {}, "policyTypes": ["Ingress"]}), policy("api", own(["Egress"]))],
        # 0.0.0.0/0 on one port is a restriction (the program's own API-server egress looks like this).
        [
            policy(
                "api", own(["Ingress", "Egress"], egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": PORT}])
            )
        ],
    ],
)
def test_a_restricted_workload_in_a_foreign_namespace_passes(policies: list[Any]) -> None:
    assert findings(deployment(), *policies) == []


def test_a_namespace_the_stack_creates_is_judged_by_its_default_deny() -> None:
    # No workload finding: the namespace itself is refused for its missing default deny.
    reported = check_stack(edge.default_deny_network_policy, [namespace(FOREIGN), deployment()])
    assert [name for name, _ in reported] == [f"ns-{FOREIGN}"]


def test_restricted_directions() -> None:
    assert restricted_directions([]) == set()
    assert restricted_directions([{"spec": own(["Ingress"])}]) == {"Ingress"}
    # Without policyTypes the API infers Ingress, plus Egress when egress rules exist.
    assert restricted_directions([{"spec": {"podSelector": {}, "egress": [{"to": WEB}]}}]) == {"Ingress", "Egress"}
    cidr_with_except = {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}
    assert restricted_directions([{"spec": own(["Egress"], egress=[{"to": [cidr_with_except]}])}]) == {"Egress"}
