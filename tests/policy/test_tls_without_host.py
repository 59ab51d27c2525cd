"""A rule without a host is judged like one with a host: it must be served over TLS too."""

from __future__ import annotations

from typing import Any

import pytest

from support_policies import network_edge as edge

from .fixtures import TYPES, assert_finding, check_resource, check_stack, metadata, resource, simple

HOST = "support.example.com"
BACKEND = {"service": {"name": "web", "port": {"name": "http"}}}


def ingress(rules: list[dict[str, Any]], tls: list[dict[str, Any]] | None = None, **spec: Any) -> Any:
    body: dict[str, Any] = {"ingressClassName": "nginx", "rules": rules, **spec}
    if tls is not None:
        body["tls"] = tls
    return simple("Ingress", name="web", spec=body)


def rule(host: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": BACKEND}]}}
    if host is not None:
        entry["host"] = host
    return entry


@pytest.mark.parametrize(
    "tls",
    [None, [], [{"hosts": [HOST], "secretName": "web-tls"}], [{"hosts": ["*.example.com"], "secretName": "w"}]],
)
def test_an_ingress_rule_without_a_host_needs_tls(tls: list[dict[str, Any]] | None) -> None:
    messages = check_resource(edge.ingress_tls, *ingress([rule(HOST), rule(None)], tls or None))
    assert_finding(
        messages,
        subject=f'{TYPES["Ingress"]} "api"',
        path="spec.rules[1].host",
        found="<unset>",
        fix="set the rule's host",
    )


def test_a_tls_entry_without_hosts_covers_the_catch_all_rule() -> None:
    tls = [{"hosts": [HOST], "secretName": "web-tls"}, {"secretName": "default-tls"}]
    assert check_resource(edge.ingress_tls, *ingress([rule(HOST), rule(None)], tls)) == []


def test_a_default_backend_without_tls_is_plain_http() -> None:
    messages = check_resource(edge.ingress_tls, *ingress([], None, defaultBackend=BACKEND))
    assert_finding(messages, subject=f'{TYPES["Ingress"]} "api"', path="spec.defaultBackend", fix="rules with hosts")
    assert check_resource(edge.ingress_tls, *ingress([], [{"secretName": "default-tls"}], defaultBackend=BACKEND)) == []


def test_the_host_sanity_rule_still_objects_to_the_missing_host() -> None:
    # Two rules, two reasons: no host (edge-host-sanity) and no TLS (ingress-tls).
    assert check_resource(edge.edge_host_sanity, *ingress([rule(None)]))


# --- HTTPRoutes without hostnames ---------------------------------------------------------------


def gateway(*listeners: dict[str, Any]) -> Any:
    props = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": metadata("edge"),
        "spec": {"gatewayClassName": "eg", "listeners": list(listeners)},
    }
    return resource(TYPES["Gateway"], props, "edge")


HTTP = {"name": "http", "protocol": "HTTP", "port": 80}
HTTPS = {"name": "https", "protocol": "HTTPS", "port": 443, "tls": {"certificateRefs": [{"name": "edge-tls"}]}}


def route(section: str | None, hostnames: list[str] | None = None) -> Any:
    ref: dict[str, Any] = {"name": "edge"}
    if section is not None:
        ref["sectionName"] = section
    spec: dict[str, Any] = {
        "parentRefs": [ref],
        "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}],
    }
    if hostnames is not None:
        spec["hostnames"] = hostnames
    props = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata("web"),
        "spec": spec,
    }
    return resource(TYPES["HTTPRoute"], props, "web")


@pytest.mark.parametrize(
    ("listeners", "section", "path"),
    [
        ((HTTP,), None, "spec.hostnames"),  # only a plain-HTTP listener serves it
        ((HTTP, HTTPS), None, "spec.parentRefs"),  # attached to both: it serves plain HTTP too
        ((HTTP, HTTPS), "http", "spec.hostnames"),
    ],
)
def test_a_route_without_hostnames_needs_tls(
    listeners: tuple[dict[str, Any], ...], section: str | None, path: str
) -> None:
    reported = check_stack(edge.httproute_tls, [gateway(*listeners), route(section)])
    assert any(name == "web" and f"{path} is" in message for name, message in reported), reported


def test_a_route_without_hostnames_on_the_https_listener_passes_tls() -> None:
    assert check_stack(edge.httproute_tls, [gateway(HTTP, HTTPS), route("https")]) == []
