"""The edge under mocks, for every stack and both modes: routes, TLS, limits, headers, timeouts,
the NetworkPolicies that admit the edge, the published CRD schemas, and the policy pack on the
program's own routes (mutations of the real production stack)."""

from __future__ import annotations

import copy
import functools
from typing import Any

import kubernetes_validate
import pytest

from components.config import DEFAULT_EDGE_NAMESPACE
from tests.crd_schemas import validation_errors
from tests.harness import STACKS, ProgramRun, RecordedResource, overlay, raw_stack_value, run_program, stack_config
from tests.policy.runner import mandatory, run_pack

MODES = ("gateway", "ingress")
EDGE_KINDS = {"Gateway", "HTTPRoute", "BackendTrafficPolicy", "Certificate", "Issuer", "ClusterIssuer", "Ingress"}
HOSTS = {
    "dev": ["support.localhost"],
    "staging": ["support.staging.example.com"],
    "production": ["support.example.com"],
}
BACKENDS = {"/api": ("api", 8000), "/": ("web", 8080)}


def edge_config(stack: str, patch: dict[str, Any] | None = None) -> dict[str, Any]:
    return overlay(raw_stack_value(stack, "edge"), patch or {})


@functools.cache
def edge_run(stack: str, mode: str) -> ProgramRun:
    config, secret_keys = stack_config(stack, overrides={"edge": edge_config(stack, {"mode": mode})})
    run = run_program(stack, config, secret_keys)
    assert run.error is None, run.error
    return run


def run_with_edge(stack: str, patch: dict[str, Any], **overrides: Any) -> ProgramRun:
    config, secret_keys = stack_config(stack, overrides={"edge": edge_config(stack, patch), **overrides})
    run = run_program(stack, config, secret_keys)
    assert run.error is None, run.error
    return run


def edge_objects(run: ProgramRun) -> dict[str, RecordedResource]:
    return {r.name: r for r in run.resources if r.type.startswith("kubernetes:") and r.kind in EDGE_KINDS}


def routed_services(run: ProgramRun) -> set[str]:
    """Every Service an HTTPRoute or Ingress sends traffic to."""
    services = set()
    for resource in edge_objects(run).values():
        if resource.kind == "HTTPRoute":
            for rule in resource.inputs["spec"]["rules"]:
                services |= {ref["name"] for ref in rule.get("backendRefs", [])}
        elif resource.kind == "Ingress":
            for rule in resource.inputs["spec"]["rules"]:
                services |= {p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    return services


@pytest.fixture(params=[(s, m) for s in STACKS for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}")
def case(request: pytest.FixtureRequest) -> tuple[str, str, ProgramRun]:
    stack, mode = request.param
    return stack, mode, edge_run(stack, mode)


# --- guarantees, every stack and both modes ------------------------------------------------------


def test_every_host_is_served_with_tls_and_no_host_is_empty_or_wildcard(case: tuple[str, str, ProgramRun]) -> None:
    stack, mode, run = case
    objects = edge_objects(run)
    hosts = HOSTS[stack]
    if mode == "gateway":
        gateway = objects["edge-gateway"].inputs["spec"]
        https = next(li for li in gateway["listeners"] if li["protocol"] == "HTTPS")
        assert https["port"] == 443 and https["tls"]["mode"] == "Terminate"
        secret = https["tls"]["certificateRefs"][0]["name"]
        route = objects["edge-https-route"].inputs["spec"]
        assert route["hostnames"] == hosts
        assert [p["sectionName"] for p in route["parentRefs"]] == [https["name"]]
        certificate = objects["edge-certificate"].inputs["spec"]
        assert certificate["secretName"] == secret and certificate["dnsNames"] == hosts
    else:
        ingress = objects["edge-ingress"].inputs
        assert [r["host"] for r in ingress["spec"]["rules"]] == hosts
        assert ingress["spec"]["tls"] == [{"hosts": hosts, "secretName": "support-tls"}]
        issuer_kind = raw_stack_value(stack, "edge")["tls"].get("issuerKind", "ClusterIssuer")
        key = "cluster-issuer" if issuer_kind == "ClusterIssuer" else "issuer"
        assert (
            ingress["metadata"]["annotations"][f"cert-manager.io/{key}"]
            == raw_stack_value(stack, "edge")["tls"]["issuer"]
        )
    for host in hosts:
        assert host and "*" not in host


def test_only_web_and_api_are_routable_at_slash_and_api(case: tuple[str, str, ProgramRun]) -> None:
    _, mode, run = case
    objects = edge_objects(run)
    seen: list[tuple[str, str, int]] = []
    if mode == "gateway":
        for rule in objects["edge-https-route"].inputs["spec"]["rules"]:
            (match,) = rule["matches"]
            (ref,) = rule["backendRefs"]
            seen.append((match["path"]["value"], ref["name"], ref["port"]))
    else:
        for rule in objects["edge-ingress"].inputs["spec"]["rules"]:
            for entry in rule["http"]["paths"]:
                seen.append(
                    (entry["path"], entry["backend"]["service"]["name"], entry["backend"]["service"]["port"]["number"])
                )
    assert sorted(seen) == sorted((path, svc, port) for path, (svc, port) in BACKENDS.items())
    assert routed_services(run) == {"api", "web"}


def test_edge_namespace_reaches_exactly_the_routed_services(case: tuple[str, str, ProgramRun]) -> None:
    _, mode, run = case
    edge_namespace = DEFAULT_EDGE_NAMESPACE[mode]
    admitted = set()
    for policy in run.k8s("NetworkPolicy"):
        for rule in policy.inputs["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                labels = peer.get("namespaceSelector", {}).get("matchLabels", {})
                if labels.get("kubernetes.io/metadata.name") == edge_namespace:
                    admitted.add(policy.inputs["metadata"]["name"])
    assert admitted == routed_services(run)


def test_http_only_redirects_and_responses_carry_security_headers(case: tuple[str, str, ProgramRun]) -> None:
    _, mode, run = case
    objects = edge_objects(run)
    if mode == "ingress":
        annotations = objects["edge-ingress"].inputs["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"
        assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
        assert not [key for key in annotations if key.endswith("-snippet")]
        return
    redirect = objects["edge-http-redirect"].inputs["spec"]
    assert [p["sectionName"] for p in redirect["parentRefs"]] == ["http"]
    (rule,) = redirect["rules"]
    assert "backendRefs" not in rule
    assert rule["filters"] == [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]
    for rule in objects["edge-https-route"].inputs["spec"]["rules"]:
        (modifier,) = [f for f in rule["filters"] if f["type"] == "ResponseHeaderModifier"]
        headers = {h["name"]: h["value"] for h in modifier["responseHeaderModifier"]["set"]}
        assert headers == {
            "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "strict-origin-when-cross-origin",
        }


def test_timeouts_outlast_the_longest_streamed_reply(case: tuple[str, str, ProgramRun]) -> None:
    _, mode, run = case
    objects = edge_objects(run)
    if mode == "gateway":
        for rule in objects["edge-https-route"].inputs["spec"]["rules"]:
            assert rule["timeouts"] == {"request": "300s", "backendRequest": "300s"}
    else:
        annotations = objects["edge-ingress"].inputs["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "300"
        assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "300"
        assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
        assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "25m"


def test_per_client_rate_limit(case: tuple[str, str, ProgramRun]) -> None:
    _, mode, run = case
    objects = edge_objects(run)
    if mode == "ingress":
        assert (
            objects["edge-ingress"].inputs["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rpm"] == "600"
        )
        assert "edge-rate-limit" not in objects
        return
    policy = objects["edge-rate-limit"].inputs["spec"]
    assert policy["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "support-https"}
    ]
    (rule,) = policy["rateLimit"]["global"]["rules"]
    assert rule["clientSelectors"] == [{"sourceCIDR": {"type": "Distinct", "value": "0.0.0.0/0"}}]
    assert rule["limit"] == {"requests": 600, "unit": "Minute"}


@pytest.mark.integration
def test_custom_resources_validate_against_their_published_crds(case: tuple[str, str, ProgramRun]) -> None:
    _, _, run = case
    objects = edge_objects(run)
    assert objects
    for resource in objects.values():
        if resource.kind == "Ingress":
            kubernetes_validate.validate(resource.inputs, kubernetes_validate.latest_version(), strict=True)
        else:
            assert validation_errors(resource.inputs) == [], resource.name


# --- per-stack issuers ---------------------------------------------------------------------------


def test_dev_signs_itself_staging_uses_acme_staging_production_the_clusters_issuer() -> None:
    dev = edge_objects(edge_run("dev", "gateway"))
    assert dev["edge-issuer"].kind == "Issuer" and dev["edge-issuer"].inputs["spec"] == {"selfSigned": {}}
    assert dev["edge-certificate"].inputs["spec"]["issuerRef"]["kind"] == "Issuer"

    staging = edge_objects(edge_run("staging", "gateway"))
    acme = staging["edge-issuer"].inputs["spec"]["acme"]
    assert staging["edge-issuer"].kind == "ClusterIssuer"
    assert acme["server"] == "https://acme-staging-v02.api.letsencrypt.org/directory"
    assert acme["email"] == "platform-oncall@example.com"
    (solver,) = acme["solvers"]
    assert solver["http01"]["gatewayHTTPRoute"]["parentRefs"][0]["sectionName"] == "http"
    ingress_solver = edge_objects(edge_run("staging", "ingress"))["edge-issuer"].inputs["spec"]["acme"]["solvers"]
    assert ingress_solver == [{"http01": {"ingress": {"ingressClassName": "nginx"}}}]

    production = edge_objects(edge_run("production", "gateway"))
    assert "edge-issuer" not in production
    assert production["edge-certificate"].inputs["spec"]["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "ClusterIssuer",
        "name": "letsencrypt-production",
    }


def test_an_existing_tls_secret_replaces_cert_manager() -> None:
    run = run_with_edge("production", {"tls": {"issuer": None, "secretName": "support-example-com"}})
    objects = edge_objects(run)
    assert "edge-certificate" not in objects and "edge-issuer" not in objects
    listener = next(li for li in objects["edge-gateway"].inputs["spec"]["listeners"] if li["protocol"] == "HTTPS")
    assert listener["tls"]["certificateRefs"][0]["name"] == "support-example-com"


def test_a_stack_without_hosts_has_no_edge() -> None:
    config, secret_keys = stack_config("staging", overrides={"edge": {}})
    run = run_program("staging", config, secret_keys)
    assert run.error is None, run.error
    assert edge_objects(run) == {}


@pytest.mark.integration
def test_edge_settings_change_what_is_emitted() -> None:
    run = run_with_edge(
        "staging",
        {
            "timeouts": {"requestSeconds": 900, "backendRequestSeconds": 600},
            "rateLimit": {"requestsPerMinute": 120, "scope": "local"},
            "gateway": {"name": "edge", "className": "envoy", "httpsSection": "websecure"},
        },
    )
    objects = edge_objects(run)
    assert objects["edge-gateway"].inputs["spec"]["gatewayClassName"] == "envoy"
    route = objects["edge-https-route"].inputs["spec"]
    assert route["parentRefs"][0] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": "edge",
        "namespace": "support-app",
        "sectionName": "websecure",
    }
    assert route["rules"][0]["timeouts"] == {"request": "900s", "backendRequest": "600s"}
    limit = objects["edge-rate-limit"].inputs["spec"]["rateLimit"]
    assert list(limit) == ["local"] and limit["local"]["rules"][0]["limit"]["requests"] == 120
    assert validation_errors(objects["edge-rate-limit"].inputs) == []


@pytest.mark.integration
def test_schema_validation_catches_a_wrong_field_and_a_wrong_type() -> None:
    route = copy.deepcopy(edge_objects(edge_run("production", "gateway"))["edge-https-route"].inputs)
    route["spec"]["rules"][0]["timeout"] = "300s"
    route["spec"]["hostnames"] = "support.example.com"
    errors = validation_errors(route)
    assert any("spec.rules[0].timeout: unknown field" in e for e in errors), errors
    assert any(e.startswith("spec.hostnames:") for e in errors), errors


# --- the policy pack on the program's own edge (production) -------------------------------------


def production_records(mode: str) -> list[RecordedResource]:
    return copy.deepcopy(edge_run("production", mode).resources)


def find(records: list[RecordedResource], name: str) -> RecordedResource:
    return next(r for r in records if r.name == name)


def test_the_production_edge_passes_the_pack_in_both_modes() -> None:
    for mode in MODES:
        assert mandatory(run_pack(production_records(mode), "production")) == [], mode


def _drop_https_listener(records: list[RecordedResource]) -> None:
    spec = find(records, "edge-gateway").inputs["spec"]
    spec["listeners"] = [li for li in spec["listeners"] if li["protocol"] != "HTTPS"]


def _serve_on_http(records: list[RecordedResource]) -> None:
    find(records, "edge-https-route").inputs["spec"]["parentRefs"][0]["sectionName"] = "http"


def _wildcard_host(records: list[RecordedResource]) -> None:
    find(records, "edge-https-route").inputs["spec"]["hostnames"] = ["*.example.com"]


def _duplicate_route(records: list[RecordedResource]) -> None:
    rules = find(records, "edge-https-route").inputs["spec"]["rules"]
    rules.append(copy.deepcopy(rules[0]))


def _ingress_without_tls(records: list[RecordedResource]) -> None:
    del find(records, "edge-ingress").inputs["spec"]["tls"]


def _ingress_snippet(records: list[RecordedResource]) -> None:
    annotations = find(records, "edge-ingress").inputs["metadata"]["annotations"]
    annotations["nginx.ingress.kubernetes.io/server-snippet"] = "location /admin { return 200; }"


def _ingress_plain_http(records: list[RecordedResource]) -> None:
    find(records, "edge-ingress").inputs["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"] = (
        "false"
    )


@pytest.mark.parametrize(
    ("mode", "mutate", "policy", "resource"),
    [
        ("gateway", _drop_https_listener, "httproute-tls", "edge-https-route"),
        ("gateway", _serve_on_http, "httproute-tls", "edge-https-route"),
        ("gateway", _wildcard_host, "edge-host-sanity", "edge-https-route"),
        ("gateway", _duplicate_route, "edge-host-sanity", "edge-https-route"),
        ("ingress", _ingress_without_tls, "ingress-tls", "edge-ingress"),
        ("ingress", _ingress_snippet, "ingress-no-snippets", "edge-ingress"),
        ("ingress", _ingress_plain_http, "ingress-tls", "edge-ingress"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_each_unsafe_edge_change_is_caught_at_mandatory_level(
    mode: str, mutate: Any, policy: str, resource: str
) -> None:
    records = production_records(mode)
    mutate(records)
    caught = mandatory(run_pack(records, "production"))
    assert (policy, resource) in {(v.policy, v.resource) for v in caught}, caught
