"""NetworkPolicies: deny everything, then allow exactly the declared connections.

One vocabulary (peers, ports, rules, a policy) and every policy of the platform built from it: the
namespace defaults, the app's services, the stores, the Jobs of the data and app tiers, and the
monitoring servers. A path between two pods exists only because a consumer declared it
(`connectsTo`, a store's clients), the edge exposes a service (`expose`), or monitoring scrapes a
metrics port. Pure functions: the tests check every derived rule without registering anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components.config import NetworkSettings, ServiceSettings
from components.contracts import Client, DataEndpoint

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
API_SERVER_PORTS = (443, 6443)


# --- the vocabulary -------------------------------------------------------------------------------


def namespace(name: str) -> dict[str, Any]:
    """Every pod of a namespace."""
    return {"namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: name}}}


def pods(selector: Mapping[str, str]) -> dict[str, Any]:
    """The selected pods of the policy's own namespace."""
    return {"pod_selector": {"match_labels": dict(selector)}}


def pods_in(name: str, selector: Mapping[str, str]) -> dict[str, Any]:
    # One peer with both selectors: those pods in that namespace, not the whole namespace.
    return {**namespace(name), **pods(selector)}


def ip_block(cidr: str | None, except_cidrs: Sequence[str] = ()) -> dict[str, Any]:
    block: dict[str, Any] = {"cidr": cidr}
    if except_cidrs:
        block["except_"] = list(except_cidrs)
    return {"ip_block": block}


def peer(endpoint: DataEndpoint) -> dict[str, Any]:
    """A store as a peer: its pods in its namespace when in-cluster, its CIDR when external."""
    if endpoint.namespace is not None:
        return (
            pods_in(endpoint.namespace, endpoint.pod_selector)
            if endpoint.pod_selector
            else namespace(endpoint.namespace)
        )
    return ip_block(endpoint.cidr)


def tcp(*ports: int | str) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def allow_from(peers: Sequence[Mapping[str, Any]], ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"from_": [dict(p) for p in peers], "ports": ports}


def allow_to(peers: Sequence[Mapping[str, Any]], ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"to": [dict(p) for p in peers], "ports": ports}


def policy(selector: Mapping[str, str], ingress: list[dict[str, Any]], egress: list[dict[str, Any]]) -> dict[str, Any]:
    """Both directions governed for the selected pods: what is not listed is denied."""
    return {
        "pod_selector": {"match_labels": dict(selector)},
        "policy_types": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": egress,
    }


# --- every namespace ------------------------------------------------------------------------------


def default_deny_spec() -> dict[str, Any]:
    return {"pod_selector": {}, "policy_types": ["Ingress", "Egress"]}


def dns_egress_spec(network: NetworkSettings) -> dict[str, Any]:
    dns = pods_in(network.dns.namespace, network.dns.pod_labels)
    return {"pod_selector": {}, "policy_types": ["Egress"], "egress": [allow_to([dns], _dns_ports())]}


def _dns_ports() -> list[dict[str, Any]]:
    return [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


# --- the app tier ---------------------------------------------------------------------------------


def llm_egress(network: NetworkSettings) -> dict[str, Any]:
    llm = network.llm_egress
    return allow_to([ip_block(llm.cidr, llm.except_cidrs)], tcp(*llm.ports))


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
        ingress.append(allow_from([pods(selectors[c]) for c in consumers], tcp("http")))
    if svc.expose:
        ingress.append(allow_from([namespace(edge_namespace)], tcp("http")))
    if svc.metrics_path is not None and scraper is not None:
        ingress.append(allow_from([pods_in(network.monitoring_namespace, scraper)], tcp(svc.metrics_port_name)))

    egress: list[dict[str, Any]] = []
    for target in sorted(svc.connects_to):
        if target in endpoints:
            egress.append(allow_to([peer(endpoints[target])], tcp(endpoints[target].port)))
        elif target == "llm":
            egress.append(llm_egress(network))
        else:
            egress.append(allow_to([pods(selectors[target])], tcp(services[target].http_port)))
    return policy(selector, ingress, egress)


def migration_policy_spec(selector: Mapping[str, str], endpoint: DataEndpoint) -> dict[str, Any]:
    """Migration pods take no traffic and reach PostgreSQL only."""
    return policy(selector, [], [allow_to([peer(endpoint)], tcp(endpoint.port))])


# --- the data tier --------------------------------------------------------------------------------


def store_policy_spec(
    selector: Mapping[str, str],
    port_name: str,
    clients: Sequence[Client],
    scraper: Mapping[str, str] | None,
    monitoring_namespace: str,
    metrics_port_name: str | None,
) -> dict[str, Any]:
    """Ingress: the declared clients to the store port, the scraper to the metrics port (where the
    store has one). Egress: none (DNS comes from the namespace's policy); a store calls nobody."""
    ingress: list[dict[str, Any]] = []
    if clients:
        peers = [pods_in(c.namespace, c.selector) for c in sorted(clients, key=lambda c: (c.namespace, c.name))]
        ingress.append(allow_from(peers, tcp(port_name)))
    if metrics_port_name is not None and scraper is not None:
        ingress.append(allow_from([pods_in(monitoring_namespace, scraper)], tcp(metrics_port_name)))
    return policy(selector, ingress, [])


def job_to_pods_policy_spec(selector: Mapping[str, str], target: Mapping[str, str], port: int) -> dict[str, Any]:
    """Pods of a Job (backups) take no traffic and reach the target's pods on one port only."""
    return policy(selector, [], [allow_to([pods(target)], tcp(port))])


def api_server_policy_spec(selector: Mapping[str, str], api_server_cidr: str) -> dict[str, Any]:
    """Pods that call the Kubernetes API and nothing else (Chroma's snapshots)."""
    return policy(selector, [], [allow_to([ip_block(api_server_cidr)], tcp(*API_SERVER_PORTS))])


# --- monitoring -----------------------------------------------------------------------------------


def prometheus_policy_spec(
    selectors: Mapping[str, Mapping[str, str]],
    ports: Mapping[str, int],
    scrape_targets: Sequence[tuple[str, int]],
    api_server_cidr: str,
) -> dict[str, Any]:
    """Prometheus: scraped by itself, queried by Grafana; reaches its scrape targets (namespace, port),
    Alertmanager, Grafana's metrics and the API server for discovery."""
    egress = [
        allow_to([namespace(ns)], tcp(*sorted({p for n, p in scrape_targets if n == ns})))
        for ns in sorted({n for n, _ in scrape_targets})
    ]
    egress += [
        allow_to([pods(selectors["alertmanager"])], tcp(ports["alertmanager"])),
        allow_to([ip_block(api_server_cidr)], tcp(*API_SERVER_PORTS)),
    ]
    ingress = [allow_from([pods(selectors["prometheus"]), pods(selectors["grafana"])], tcp(ports["prometheus"]))]
    return policy(selectors["prometheus"], ingress, egress)


def alertmanager_policy_spec(
    selectors: Mapping[str, Mapping[str, str]], ports: Mapping[str, int], network: NetworkSettings
) -> dict[str, Any]:
    """Alertmanager: receives from Prometheus (alerts, scrapes) and Grafana; posts webhooks over HTTPS to
    public addresses only."""
    ingress = [allow_from([pods(selectors["prometheus"]), pods(selectors["grafana"])], tcp(ports["alertmanager"]))]
    public = ip_block(network.llm_egress.cidr, network.llm_egress.except_cidrs)
    return policy(selectors["alertmanager"], ingress, [allow_to([public], tcp(443))])


def kube_state_metrics_policy_spec(
    selectors: Mapping[str, Mapping[str, str]], ports: Mapping[str, int], api_server_cidr: str
) -> dict[str, Any]:
    """kube-state-metrics: scraped by Prometheus only; reaches nothing but the API server."""
    ingress = [allow_from([pods(selectors["prometheus"])], tcp(ports["kube-state-metrics"]))]
    egress = [allow_to([ip_block(api_server_cidr)], tcp(*API_SERVER_PORTS))]
    return policy(selectors["kube-state-metrics"], ingress, egress)


def grafana_policy_spec(
    selectors: Mapping[str, Mapping[str, str]], ports: Mapping[str, int], allowed_namespaces: Sequence[str]
) -> dict[str, Any]:
    """Grafana: reached by Prometheus (metrics) and the declared namespaces only; queries Prometheus
    and Alertmanager."""
    ingress = [allow_from([pods(selectors["prometheus"])], tcp(ports["grafana"]))]
    if allowed_namespaces:
        ingress.append(allow_from([namespace(ns) for ns in sorted(allowed_namespaces)], tcp(ports["grafana"])))
    egress = [
        allow_to([pods(selectors["prometheus"])], tcp(ports["prometheus"])),
        allow_to([pods(selectors["alertmanager"])], tcp(ports["alertmanager"])),
    ]
    return policy(selectors["grafana"], ingress, egress)


def pooler_policy_spec(
    selector: Mapping[str, str],
    port_name: str,
    clients: Sequence[Client],
    server: Mapping[str, str],
    server_port: int,
) -> dict[str, Any]:
    """A pooler in front of a store: admits the store's declared clients, reaches only the store's pods."""
    spec = store_policy_spec(selector, port_name, clients, None, "", None)
    spec["egress"] = [allow_to([pods(server)], tcp(server_port))]
    return spec
