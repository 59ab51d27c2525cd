"""NetworkPolicy builders: deny everything, then allow exactly the declared connections.

A path between two pods exists only because a consumer declared it (`connectsTo`), the edge
exposes a service (`expose`), or monitoring scrapes a metrics port. Pure functions: the tests
check every derived rule without registering anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.config import LlmEgressSettings, NetworkSettings, ServiceSettings

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class SecretKeyRef:
    """Where a credential lives as a Kubernetes Secret key (in the store's own namespace)."""

    namespace: str
    name: str
    key: str


@dataclass(frozen=True)
class DataEndpoint:
    """Where a data store listens, as the data tier publishes it: the app tier's typed input.

    In-cluster stores name their namespace and pod selector (NetworkPolicies select exactly those
    pods); external ones give the CIDR their address lies in."""

    name: str
    host: str
    port: int
    namespace: str | None
    cidr: str | None
    pod_selector: Mapping[str, str] | None = None
    # The credential as a secret Output (composed into DATABASE_URL and friends), and where the data
    # tier keeps it; None where the store takes none (in-cluster Chroma has no auth).
    credential: pulumi.Output[str] | None = None
    secret: SecretKeyRef | None = None
    database: str | None = None
    user: str | None = None
    tls: bool = False

    def peer(self) -> dict[str, Any]:
        if self.namespace is not None:
            peer: dict[str, Any] = {"namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: self.namespace}}}
            if self.pod_selector:
                # One peer with both selectors: those pods in that namespace, not the whole namespace.
                peer["pod_selector"] = {"match_labels": dict(self.pod_selector)}
            return peer
        return {"ip_block": {"cidr": self.cidr}}


def default_deny_spec() -> dict[str, Any]:
    return {"pod_selector": {}, "policy_types": ["Ingress", "Egress"]}


def dns_egress_spec(network: NetworkSettings) -> dict[str, Any]:
    return {
        "pod_selector": {},
        "policy_types": ["Egress"],
        "egress": [
            {
                "to": [
                    {
                        "namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: network.dns.namespace}},
                        "pod_selector": {"match_labels": dict(network.dns.pod_labels)},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }
        ],
    }


def _llm_egress(llm: LlmEgressSettings) -> dict[str, Any]:
    block: dict[str, Any] = {"cidr": llm.cidr}
    if llm.except_cidrs:
        block["except_"] = list(llm.except_cidrs)
    return {"to": [{"ip_block": block}], "ports": [{"protocol": "TCP", "port": p} for p in llm.ports]}


def service_policy_spec(
    name: str,
    selector: Mapping[str, str],
    services: Mapping[str, ServiceSettings],
    selectors: Mapping[str, Mapping[str, str]],
    endpoints: Mapping[str, DataEndpoint],
    network: NetworkSettings,
    edge_namespace: str,
    scraper: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Ingress and egress of one service, derived from every service's declared connections.

    `scraper` selects the pods that scrape metrics ports (Prometheus, in the monitoring namespace);
    None (monitoring off) leaves the metrics port closed."""
    svc = services[name]
    ingress: list[dict[str, Any]] = []
    consumers = sorted(other for other, s in services.items() if name in s.connects_to)
    if consumers:
        ingress.append(
            {
                "from_": [{"pod_selector": {"match_labels": dict(selectors[c])}} for c in consumers],
                "ports": [{"protocol": "TCP", "port": "http"}],
            }
        )
    if svc.expose:
        ingress.append(
            {
                "from_": [{"namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: edge_namespace}}}],
                "ports": [{"protocol": "TCP", "port": "http"}],
            }
        )
    if svc.metrics_path is not None and scraper is not None:
        ingress.append(
            {
                # One peer with both selectors: those pods in that namespace, not the whole namespace.
                "from_": [
                    {
                        "namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: network.monitoring_namespace}},
                        "pod_selector": {"match_labels": dict(scraper)},
                    }
                ],
                "ports": [{"protocol": "TCP", "port": svc.metrics_port_name}],
            }
        )

    egress: list[dict[str, Any]] = []
    for target in sorted(svc.connects_to):
        if target in endpoints:
            endpoint = endpoints[target]
            egress.append({"to": [endpoint.peer()], "ports": [{"protocol": "TCP", "port": endpoint.port}]})
        elif target == "llm":
            egress.append(_llm_egress(network.llm_egress))
        else:
            egress.append(
                {
                    "to": [{"pod_selector": {"match_labels": dict(selectors[target])}}],
                    "ports": [{"protocol": "TCP", "port": services[target].http_port}],
                }
            )

    spec: dict[str, Any] = {
        "pod_selector": {"match_labels": dict(selector)},
        "policy_types": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": egress,
    }
    return spec
