"""Network and edge: default deny, NetworkPolicy coverage, public Services, TLS, host sanity."""

from __future__ import annotations

from typing import Any

import pytest

from support_policies import network_edge as edge
from support_policies.k8s import to_plain

from .fixtures import (
    NAMESPACE,
    TYPES,
    WORKLOAD_KINDS,
    assert_finding,
    check_resource,
    check_stack,
    labels,
    metadata,
    pod_metadata_path,
    resource,
    selector,
    simple,
    subject_label,
    workload,
)

# --- builders -------------------------------------------------------------------------------


def namespace(name: str = NAMESPACE, logical: str = "ns") -> Any:
    return resource(TYPES["Namespace"], {"metadata": metadata(name, namespace=None)}, logical)


def network_policy(logical: str, spec: dict[str, Any], namespace: str = NAMESPACE) -> Any:
    props = {"metadata": metadata(logical, namespace), "spec": spec}
    return resource(TYPES["NetworkPolicy"], props, logical)


def default_deny(namespace: str = NAMESPACE) -> Any:
    return network_policy(f"deny-{namespace}", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, namespace)


def dns_egress(namespace: str = NAMESPACE) -> Any:
    spec = {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}],
    }
    return network_policy(f"dns-{namespace}", spec, namespace)


def allow(name: str = "api", namespace: str = NAMESPACE, pod_selector: dict[str, Any] | None = None) -> Any:
    spec = {
        "podSelector": pod_selector if pod_selector is not None else {"matchLabels": selector(name)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": selector("web")}}], "ports": [{"port": "http"}]}],
        "egress": [],
    }
    return network_policy(f"{name}-allow", spec, namespace)


def as_resource(kind: str, logical: str = "api", **kwargs: Any) -> Any:
    resource_type, props = workload(kind, **kwargs)
    return resource(resource_type, props, logical)


# --- default deny ---------------------------------------------------------------------------


def test_namespace_with_default_deny_passes() -> None:
    assert check_stack(edge.default_deny_network_policy, [namespace(), default_deny(), dns_egress()]) == []


def test_split_ingress_and_egress_deny_passes() -> None:
    ingress = network_policy("deny-in", {"podSelector": {}, "policyTypes": ["Ingress"]})
    egress = network_policy("deny-out", {"podSelector": {}, "policyTypes": ["Egress"]})
    assert check_stack(edge.default_deny_network_policy, [namespace(), ingress, egress]) == []


@pytest.mark.parametrize(
    ("others", "found", "missing"),
    [
        ([], "<unset>", "Ingress and Egress"),
        ([network_policy("deny-in", {"podSelector": {}})], '["Ingress"]', "Egress traffic"),
        ([dns_egress()], "<unset>", "Ingress and Egress"),
        ([allow()], "<unset>", "Ingress and Egress"),
        ([default_deny("other")], "<unset>", "Ingress and Egress"),
        (
            [
                network_policy(
                    "not-empty", {"podSelector": {"matchLabels": selector()}, "policyTypes": ["Ingress", "Egress"]}
                )
            ],
            "<unset>",
            "Ingress and Egress",
        ),
    ],
    ids=["none", "ingress-only", "dns-allow-only", "workload-policy", "other-namespace", "non-empty-selector"],
)
def test_namespace_without_default_deny_fails(others: list[Any], found: str, missing: str) -> None:
    reported = check_stack(edge.default_deny_network_policy, [namespace(), *others])
    assert [name for name, _ in reported] == ["ns"]
    message = assert_finding(
        [m for _, m in reported],
        subject=f'{TYPES["Namespace"]} "ns"',
        path=f'default-deny policyTypes of NetworkPolicies in namespace "{NAMESPACE}"',
        found=found,
        fix="podSelector {}, policyTypes [Ingress, Egress]",
    )
    assert missing in message


def test_namespace_without_a_literal_name_fails() -> None:
    unnamed = resource(TYPES["Namespace"], {"metadata": {"labels": labels()}}, "ns")
    reported = check_stack(edge.default_deny_network_policy, [unnamed])
    assert_finding([m for _, m in reported], subject=f'{TYPES["Namespace"]} "ns"', path="metadata.name", fix="explicit")


# --- coverage -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
def test_workload_selected_by_its_policy_passes(kind: str) -> None:
    stack = [as_resource(kind), default_deny(), dns_egress(), allow()]
    assert check_stack(edge.network_policy_coverage, stack) == []


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
@pytest.mark.parametrize(
    "policies",
    [
        [],
        [default_deny(), dns_egress()],
        [allow(namespace="other")],
        [allow("web")],
    ],
    ids=["none", "namespace-wide-only", "other-namespace", "other-workload"],
)
def test_uncovered_workload_fails(kind: str, policies: list[Any]) -> None:
    reported = check_stack(edge.network_policy_coverage, [as_resource(kind), *policies])
    assert [name for name, _ in reported] == ["api"]
    assert_finding(
        [m for _, m in reported],
        subject=subject_label(kind),
        path=f"{pod_metadata_path(kind)}.labels",
        fix="podSelector matches these labels",
    )


def test_match_expressions_select_pods() -> None:
    by_expression = allow(
        pod_selector={
            "matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": ["api", "web"]}]
        }
    )
    assert check_stack(edge.network_policy_coverage, [as_resource("Deployment"), by_expression]) == []


def test_missing_namespace_means_default() -> None:
    stack = [as_resource("Deployment", namespace=None), allow(namespace="default")]
    assert check_stack(edge.network_policy_coverage, stack) == []
    stack = [as_resource("Deployment", namespace=None), allow()]
    assert len(check_stack(edge.network_policy_coverage, stack)) == 1


# --- public services ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "path", "found"),
    [
        ({"type": "LoadBalancer"}, "spec.type", '"LoadBalancer"'),
        ({"type": "NodePort"}, "spec.type", '"NodePort"'),
        ({"type": "ClusterIP", "externalIPs": ["203.0.113.7"]}, "spec.externalIPs", '["203.0.113.7"]'),
    ],
)
def test_public_service_fails_unless_annotated(spec: dict[str, Any], path: str, found: str) -> None:
    resource_type, props = simple("Service", spec={**spec, "ports": [{"port": 80}]})
    messages = check_resource(edge.no_public_services, resource_type, props)
    assert_finding(
        messages,
        subject=f'{TYPES["Service"]} "api"',
        path=path,
        found=found,
        fix="support-platform.io/allow-public-service",
    )
    props["metadata"]["annotations"] = {"support-platform.io/allow-public-service": "the edge load balancer"}
    assert check_resource(edge.no_public_services, resource_type, props) == []


def test_empty_allow_annotation_does_not_count() -> None:
    resource_type, props = simple("Service", spec={"type": "LoadBalancer"})
    props["metadata"]["annotations"] = {"support-platform.io/allow-public-service": " "}
    assert len(check_resource(edge.no_public_services, resource_type, props)) == 1


def test_cluster_ip_service_passes() -> None:
    assert check_resource(edge.no_public_services, *simple("Service", spec={"type": "ClusterIP"})) == []
    assert check_resource(edge.no_public_services, *simple("Service", spec={})) == []


# --- ingress TLS ----------------------------------------------------------------------------


def ingress(
    hosts: list[str | None], tls_hosts: list[str], paths: list[str] | None = None, name: str = "web"
) -> tuple[str, dict[str, Any]]:
    rules = []
    for host in hosts:
        rule: dict[str, Any] = {
            "http": {
                "paths": [
                    {"path": p, "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}}
                    for p in (paths or ["/"])
                ]
            }
        }
        if host is not None:
            rule["host"] = host
        rules.append(rule)
    spec: dict[str, Any] = {"ingressClassName": "nginx", "rules": rules}
    if tls_hosts:
        spec["tls"] = [{"hosts": tls_hosts, "secretName": "web-tls"}]
    return simple("Ingress", name=name, spec=spec)


def test_ingress_host_without_tls_fails() -> None:
    messages = check_resource(
        edge.ingress_tls, *ingress(["support.example.com", "api.example.com"], ["support.example.com"])
    )
    assert_finding(
        messages,
        subject=f'{TYPES["Ingress"]} "api"',
        path="spec.rules[1].host",
        found='"api.example.com"',
        fix="spec.tls[].hosts",
    )


def test_ingress_without_tls_block_fails_per_host() -> None:
    assert len(check_resource(edge.ingress_tls, *ingress(["a.example.com", "b.example.com"], []))) == 2


@pytest.mark.parametrize(
    "annotation",
    [
        "nginx.ingress.kubernetes.io/configuration-snippet",
        "nginx.ingress.kubernetes.io/server-snippet",
        "nginx.ingress.kubernetes.io/auth-snippet",
    ],
)
def test_ingress_snippet_annotations_fail(annotation: str) -> None:
    resource_type, props = ingress(["support.example.com"], ["support.example.com"])
    props["metadata"]["annotations"] = {annotation: "return 200;", "nginx.ingress.kubernetes.io/limit-rpm": "600"}
    messages = check_resource(edge.ingress_no_snippets, resource_type, props)
    assert len(messages) == 1
    assert f'metadata.annotations["{annotation}"]' in messages[0]
    assert "return 200" not in messages[0]


def test_ingress_without_snippets_passes() -> None:
    resource_type, props = ingress(["support.example.com"], ["support.example.com"])
    props["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/proxy-read-timeout": "300"}
    assert check_resource(edge.ingress_no_snippets, resource_type, props) == []


def test_ingress_tls_with_exact_and_wildcard_certificates_passes() -> None:
    props = ingress(["support.example.com", "api.example.com"], ["support.example.com", "*.example.com"])
    assert check_resource(edge.ingress_tls, *props) == []


def test_wildcard_certificate_covers_one_label_only() -> None:
    assert len(check_resource(edge.ingress_tls, *ingress(["a.b.example.com"], ["*.example.com"]))) == 1


def test_ingress_switching_off_the_https_redirect_fails() -> None:
    resource_type, props = ingress(["support.example.com"], ["support.example.com"])
    props["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}
    messages = check_resource(edge.ingress_tls, resource_type, props)
    assert_finding(
        messages,
        subject=f'{TYPES["Ingress"]} "api"',
        path='metadata.annotations["nginx.ingress.kubernetes.io/ssl-redirect"]',
        found='"false"',
        fix="remove the annotation",
    )


# --- HTTPRoute TLS --------------------------------------------------------------------------

HOST = "support.example.com"


def gateway(
    name: str = "edge",
    namespace: str = "edge",
    listeners: list[dict[str, Any]] | None = None,
) -> Any:
    default_listeners = [
        {
            "name": "http",
            "protocol": "HTTP",
            "port": 80,
            "hostname": HOST,
            "allowedRoutes": {"namespaces": {"from": "All"}},
        },
        {
            "name": "https",
            "protocol": "HTTPS",
            "port": 443,
            "hostname": HOST,
            "tls": {"mode": "Terminate", "certificateRefs": [{"name": "edge-tls"}]},
            "allowedRoutes": {"namespaces": {"from": "All"}},
        },
    ]
    props = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": metadata(name, namespace),
        "spec": {"gatewayClassName": "nginx", "listeners": listeners if listeners is not None else default_listeners},
    }
    return resource(TYPES["Gateway"], props, name)


def route(
    name: str = "web",
    hostnames: list[str] | None = None,
    parent_refs: list[dict[str, Any]] | None = None,
    rules: list[dict[str, Any]] | None = None,
    resource_type: str = TYPES["HTTPRoute"],
) -> Any:
    props = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata(name),
        "spec": {
            "parentRefs": parent_refs
            if parent_refs is not None
            else [{"name": "edge", "namespace": "edge", "sectionName": "https"}],
            "hostnames": hostnames if hostnames is not None else [HOST],
            "rules": rules
            if rules is not None
            else [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": "web", "port": 8080}],
                }
            ],
        },
    }
    return resource(resource_type, props, name)


REDIRECT_RULES = [{"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]


def test_route_on_https_listener_passes() -> None:
    redirect = route(
        "web-redirect", parent_refs=[{"name": "edge", "namespace": "edge", "sectionName": "http"}], rules=REDIRECT_RULES
    )
    assert check_stack(edge.httproute_tls, [gateway(), route(), redirect]) == []


def test_route_attached_to_every_listener_serves_plain_http() -> None:
    reported = check_stack(edge.httproute_tls, [gateway(), route(parent_refs=[{"name": "edge", "namespace": "edge"}])])
    assert [name for name, _ in reported] == ["web"]
    assert_finding(
        [m for _, m in reported],
        subject=f'{TYPES["HTTPRoute"]} "web"',
        path="spec.parentRefs",
        found='["edge/edge/http"]',
        fix="redirect-only route",
    )


def test_route_only_on_http_listener_fails_twice() -> None:
    plain = route(parent_refs=[{"name": "edge", "namespace": "edge", "sectionName": "http"}])
    messages = [m for _, m in check_stack(edge.httproute_tls, [gateway(), plain])]
    assert_finding(
        messages,
        subject=f'{TYPES["HTTPRoute"]} "web"',
        path=f"spec.hostnames[{HOST}]",
        found=f'"{HOST}"',
        fix="HTTPS listener",
    )
    assert_finding(messages, subject=f'{TYPES["HTTPRoute"]} "web"', path="spec.parentRefs", found='["edge/edge/http"]')


def test_hostname_outside_the_https_listener_fails() -> None:
    stray = route(hostnames=[HOST, "admin.example.com"])
    messages = [m for _, m in check_stack(edge.httproute_tls, [gateway(), stray])]
    assert_finding(messages, subject=f'{TYPES["HTTPRoute"]} "web"', path="spec.hostnames[admin.example.com]")


def test_wildcard_listener_covers_subdomains() -> None:
    listeners = [
        {
            "name": "https",
            "protocol": "HTTPS",
            "port": 443,
            "hostname": "*.example.com",
            "allowedRoutes": {"namespaces": {"from": "All"}},
        }
    ]
    assert check_stack(edge.httproute_tls, [gateway(listeners=listeners), route(hostnames=["a.b.example.com"])]) == []


def test_gateway_outside_the_stack_fails() -> None:
    reported = check_stack(edge.httproute_tls, [route()])
    messages = [m for _, m in reported]
    assert_finding(
        messages, subject=f'{TYPES["HTTPRoute"]} "web"', path="spec.parentRefs[0]", fix="Gateway this program manages"
    )


def test_route_without_parent_refs_fails() -> None:
    messages = [m for _, m in check_stack(edge.httproute_tls, [gateway(), route(parent_refs=[])])]
    assert_finding(messages, subject=f'{TYPES["HTTPRoute"]} "web"', path="spec.parentRefs", found="<unset>")


def test_listener_allowing_only_its_own_namespace_does_not_attach() -> None:
    listeners = [{"name": "https", "protocol": "HTTPS", "port": 443, "hostname": HOST}]
    messages = [m for _, m in check_stack(edge.httproute_tls, [gateway(listeners=listeners), route()])]
    assert_finding(messages, subject=f'{TYPES["HTTPRoute"]} "web"', path=f"spec.hostnames[{HOST}]")
    same_namespace = gateway(namespace=NAMESPACE, listeners=listeners)
    assert check_stack(edge.httproute_tls, [same_namespace, route(parent_refs=[{"name": "edge"}])]) == []


def test_namespace_selector_of_a_listener_uses_namespace_labels() -> None:
    listeners = [
        {
            "name": "https",
            "protocol": "HTTPS",
            "port": 443,
            "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"edge-access": "true"}}}},
        }
    ]
    unlabelled = namespace()
    assert len(check_stack(edge.httproute_tls, [gateway(listeners=listeners), unlabelled, route()])) == 1
    labelled_props = {
        "metadata": {**metadata(NAMESPACE, namespace=None), "labels": {**labels(), "edge-access": "true"}}
    }
    labelled = resource(TYPES["Namespace"], labelled_props, "ns")
    assert check_stack(edge.httproute_tls, [gateway(listeners=listeners), labelled, route()]) == []


def test_namespace_selector_may_use_the_server_set_name_label() -> None:
    def listeners_for(allowed: str) -> list[dict[str, Any]]:
        by_name = {"matchLabels": {"kubernetes.io/metadata.name": allowed}}
        allowed_routes = {"namespaces": {"from": "Selector", "selector": by_name}}
        return [{"name": "https", "protocol": "HTTPS", "port": 443, "allowedRoutes": allowed_routes}]

    assert check_stack(edge.httproute_tls, [gateway(listeners=listeners_for(NAMESPACE)), namespace(), route()]) == []
    stack = [gateway(listeners=listeners_for("elsewhere")), namespace(), route()]
    assert len(check_stack(edge.httproute_tls, stack)) == 1


def test_redirect_only_route_may_use_the_http_listener() -> None:
    redirect = route(parent_refs=[{"name": "edge", "namespace": "edge"}], rules=REDIRECT_RULES)
    assert check_stack(edge.httproute_tls, [gateway(), redirect]) == []


def test_redirect_to_http_is_not_redirect_only() -> None:
    rules = [{"filters": [{"type": "RequestRedirect", "requestRedirect": {"hostname": "other.example.com"}}]}]
    assert not edge.is_redirect_only(rules)
    assert not edge.is_redirect_only([])
    assert edge.is_redirect_only(REDIRECT_RULES)


# --- host sanity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "found", "fix"),
    [
        (None, "<unset>", "explicit public hostname"),
        ("", '""', "explicit public hostname"),
        ("*.example.com", '"*.example.com"', "each public hostname"),
    ],
)
def test_ingress_host_must_be_explicit(host: str | None, found: str, fix: str) -> None:
    messages = check_resource(edge.edge_host_sanity, *ingress([HOST, host], [HOST]))
    assert_finding(messages, subject=f'{TYPES["Ingress"]} "api"', path="spec.rules[1].host", found=found, fix=fix)


def test_ingress_default_backend_fails() -> None:
    resource_type, props = ingress([HOST], [HOST])
    props["spec"]["defaultBackend"] = {"service": {"name": "web", "port": {"number": 80}}}
    messages = check_resource(edge.edge_host_sanity, resource_type, props)
    assert_finding(messages, subject=f'{TYPES["Ingress"]} "api"', path="spec.defaultBackend", fix="explicit hosts")


def test_duplicate_ingress_path_fails() -> None:
    messages = check_resource(edge.edge_host_sanity, *ingress([HOST, HOST], [HOST], paths=["/api"]))
    message = assert_finding(
        messages, subject=f'{TYPES["Ingress"]} "api"', path="spec.rules[1].http.paths[0]", fix="remove or merge"
    )
    assert "spec.rules[0].http.paths[0]" in message


@pytest.mark.parametrize(
    ("hostnames", "path", "found"),
    [([], "spec.hostnames", "<unset>"), ([HOST, "*.example.com"], "spec.hostnames[1]", '"*.example.com"')],
)
def test_route_hostnames_must_be_explicit(hostnames: list[str], path: str, found: str) -> None:
    r = route(hostnames=hostnames)
    messages = check_resource(edge.edge_host_sanity, r.resource_type, to_plain(r.props), name="web")
    assert_finding(messages, subject=f'{TYPES["HTTPRoute"]} "web"', path=path, found=found)


def test_duplicate_route_match_fails() -> None:
    rules = [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "backendRefs": [{"name": "api"}]},
        {"matches": [{"path": {"value": "/api"}}], "backendRefs": [{"name": "api-v2"}]},
    ]
    r = route(rules=rules)
    messages = check_resource(edge.edge_host_sanity, r.resource_type, to_plain(r.props), name="web")
    assert_finding(
        messages, subject=f'{TYPES["HTTPRoute"]} "web"', path="spec.rules[1].matches[0]", fix="remove or merge"
    )


def test_distinct_hosts_and_paths_pass() -> None:
    assert check_resource(edge.edge_host_sanity, *ingress([HOST, "api.example.com"], [HOST], paths=["/", "/api"])) == []
    rules = [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "backendRefs": [{"name": "api"}]},
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "headers": [{"name": "x-v", "value": "2"}]}],
            "backendRefs": [{"name": "v2"}],
        },
    ]
    r = route(rules=rules)
    assert check_resource(edge.edge_host_sanity, r.resource_type, to_plain(r.props), name="web") == []


def test_same_host_and_path_in_two_resources_fails() -> None:
    first_type, first = ingress([HOST], [HOST], name="web")
    second_type, second = ingress([HOST], [HOST], name="web-copy")
    stack = [resource(first_type, first, "web"), resource(second_type, second, "web-copy")]
    reported = check_stack(edge.edge_unique_host_paths, stack)
    assert [name for name, _ in reported] == ["web-copy"]
    message = assert_finding(
        [m for _, m in reported],
        subject=f'{TYPES["Ingress"]} "web-copy"',
        path="spec.rules[0].http.paths[0]",
        fix="exactly one Ingress or HTTPRoute",
    )
    assert f'{TYPES["Ingress"]} "web"' in message


def test_ingress_and_route_for_the_same_host_and_path_fail() -> None:
    ingress_type, ingress_props = ingress([HOST], [HOST])
    stack = [resource(ingress_type, ingress_props, "web-ingress"), route()]
    assert [name for name, _ in check_stack(edge.edge_unique_host_paths, stack)] == ["web"]


def test_redirect_route_may_repeat_hosts_and_distinct_paths_pass() -> None:
    redirect = route(
        "web-redirect", parent_refs=[{"name": "edge", "namespace": "edge", "sectionName": "http"}], rules=REDIRECT_RULES
    )
    api_rules = [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "backendRefs": [{"name": "api"}]}]
    assert check_stack(edge.edge_unique_host_paths, [route(), redirect, route("api", rules=api_rules)]) == []
