"""The edge: how users reach web (`/`) and api (`/api`) over TLS, in one of two renderings.

Gateway API mode (default): a Gateway with an HTTPS listener (certificate from cert-manager or an
existing Secret) and a plain-HTTP listener, an HTTPRoute on HTTPS with streaming-safe timeouts and
security response headers, a redirect-only HTTPRoute on HTTP, and Envoy Gateway's
BackendTrafficPolicy for per-client rate limits (429).
Ingress mode: one Ingress for ingress-nginx with TLS hosts, the cert-manager annotation, SSL
redirect, per-client limits, proxy timeouts and body size; no snippet annotations.

The builders are pure functions from settings to manifests (dicts in the API's own camelCase, as
custom resources take them); the component (components/edge/tier.py) only registers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.config import ACME_SERVERS, EdgeSettings
from components.contracts import Backend
from components.labels import standard_labels

GATEWAY_API = "gateway.networking.k8s.io/v1"
CERT_MANAGER_API = "cert-manager.io/v1"
ENVOY_GATEWAY_API = "gateway.envoyproxy.io/v1alpha1"
HTTPS_ROUTE = "support-https"
HTTP_REDIRECT_ROUTE = "support-http-redirect"
INGRESS_NAME = "support"
NGINX = "nginx.ingress.kubernetes.io"


def tls_secret_name(edge: EdgeSettings) -> str:
    return edge.tls.secret_name or "support-tls"


def security_headers(edge: EdgeSettings) -> list[dict[str, str]]:
    return [
        {"name": "Strict-Transport-Security", "value": f"max-age={edge.hsts_max_age_seconds}; includeSubDomains"},
        {"name": "X-Content-Type-Options", "value": "nosniff"},
        {"name": "X-Frame-Options", "value": "DENY"},
        {"name": "Referrer-Policy", "value": "strict-origin-when-cross-origin"},
    ]


def _seconds(value: int) -> str:
    return f"{value}s"


def _ordered_routes(edge: EdgeSettings) -> list[tuple[str, str]]:
    # Longest prefix first: the order readers expect, although Gateway API and nginx both pick
    # the longest matching prefix anyway.
    return sorted(edge.routes.items(), key=lambda item: (-len(item[0]), item[0]))


def gateway_manifest(edge: EdgeSettings, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    same_namespace = {"namespaces": {"from": "Same"}}
    return {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": {"name": edge.gateway.name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "gatewayClassName": edge.gateway.class_name,
            "listeners": [
                {
                    "name": edge.gateway.https_section,
                    "protocol": "HTTPS",
                    "port": 443,
                    "allowedRoutes": same_namespace,
                    "tls": {
                        "mode": "Terminate",
                        "certificateRefs": [{"group": "", "kind": "Secret", "name": tls_secret_name(edge)}],
                    },
                },
                {"name": edge.gateway.http_section, "protocol": "HTTP", "port": 80, "allowedRoutes": same_namespace},
            ],
        },
    }


def _parent(edge: EdgeSettings, namespace: str, section: str) -> dict[str, Any]:
    return {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": edge.gateway.name,
        "namespace": namespace,
        "sectionName": section,
    }


def https_route_manifest(
    edge: EdgeSettings, namespace: str, labels: Mapping[str, str], backends: Mapping[str, Backend]
) -> dict[str, Any]:
    rules = []
    for path, target in _ordered_routes(edge):
        backend = backends[target]
        rules.append(
            {
                "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                "filters": [
                    {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": security_headers(edge)}}
                ],
                "backendRefs": [{"group": "", "kind": "Service", "name": backend.service, "port": backend.port}],
                "timeouts": {
                    "request": _seconds(edge.timeouts.request_seconds),
                    "backendRequest": _seconds(edge.timeouts.backend_request_seconds),
                },
            }
        )
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": {"name": HTTPS_ROUTE, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "parentRefs": [_parent(edge, namespace, edge.gateway.https_section)],
            "hostnames": list(edge.hosts),
            "rules": rules,
        },
    }


def redirect_route_manifest(edge: EdgeSettings, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": {"name": HTTP_REDIRECT_ROUTE, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "parentRefs": [_parent(edge, namespace, edge.gateway.http_section)],
            "hostnames": list(edge.hosts),
            "rules": [
                {"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}
            ],
        },
    }


def rate_limit_manifest(edge: EdgeSettings, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """Envoy Gateway's BackendTrafficPolicy: each client IP gets its own bucket; over it, 429."""
    rule = {
        "clientSelectors": [{"sourceCIDR": {"type": "Distinct", "value": "0.0.0.0/0"}}],
        "limit": {"requests": edge.rate_limit.requests_per_minute, "unit": "Minute"},
    }
    return {
        "apiVersion": ENVOY_GATEWAY_API,
        "kind": "BackendTrafficPolicy",
        "metadata": {"name": f"{HTTPS_ROUTE}-rate-limit", "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": HTTPS_ROUTE}],
            "rateLimit": {edge.rate_limit.scope: {"rules": [rule]}},
        },
    }


def certificate_manifest(edge: EdgeSettings, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    assert edge.tls.issuer is not None  # only called when cert-manager signs
    return {
        "apiVersion": CERT_MANAGER_API,
        "kind": "Certificate",
        "metadata": {"name": tls_secret_name(edge), "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "secretName": tls_secret_name(edge),
            "dnsNames": list(edge.hosts),
            "issuerRef": {"group": "cert-manager.io", "kind": edge.tls.issuer_kind, "name": edge.tls.issuer},
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        },
    }


def issuer_manifest(edge: EdgeSettings, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The issuer the program creates: self-signed, or Let's Encrypt answering HTTP-01 on this edge."""
    tls = edge.tls
    assert tls.issuer is not None and tls.create_issuer != "none"
    metadata: dict[str, Any] = {"name": tls.issuer, "labels": dict(labels)}
    if tls.issuer_kind == "Issuer":
        metadata["namespace"] = namespace
    spec: dict[str, Any]
    if tls.create_issuer == "selfSigned":
        spec = {"selfSigned": {}}
    else:
        solver: dict[str, Any]
        if edge.mode == "gateway":
            solver = {"gatewayHTTPRoute": {"parentRefs": [_parent(edge, namespace, edge.gateway.http_section)]}}
        else:
            solver = {"ingress": {"ingressClassName": edge.ingress.class_name}}
        spec = {
            "acme": {
                "server": ACME_SERVERS[tls.create_issuer],
                "email": tls.acme_email,
                "privateKeySecretRef": {"name": f"{tls.issuer}-account-key"},
                "solvers": [{"http01": solver}],
            }
        }
    return {"apiVersion": CERT_MANAGER_API, "kind": tls.issuer_kind, "metadata": metadata, "spec": spec}


def ingress_manifest(
    edge: EdgeSettings, namespace: str, labels: Mapping[str, str], backends: Mapping[str, Backend]
) -> dict[str, Any]:
    timeout = str(edge.timeouts.backend_request_seconds)
    annotations = {
        f"{NGINX}/ssl-redirect": "true",
        f"{NGINX}/force-ssl-redirect": "true",
        f"{NGINX}/proxy-body-size": edge.ingress.body_size,
        f"{NGINX}/proxy-read-timeout": timeout,
        f"{NGINX}/proxy-send-timeout": str(edge.timeouts.request_seconds),
        # Streamed replies reach the client as they are produced, not after the upstream finishes.
        f"{NGINX}/proxy-buffering": "off",
    }
    if edge.rate_limit.enabled:
        annotations[f"{NGINX}/limit-rpm"] = str(edge.rate_limit.requests_per_minute)
    if edge.tls.issuer is not None:
        key = "cluster-issuer" if edge.tls.issuer_kind == "ClusterIssuer" else "issuer"
        annotations[f"cert-manager.io/{key}"] = edge.tls.issuer
    paths = [
        {
            "path": path,
            "pathType": "Prefix",
            "backend": {"service": {"name": backends[target].service, "port": {"number": backends[target].port}}},
        }
        for path, target in _ordered_routes(edge)
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": INGRESS_NAME, "namespace": namespace, "labels": dict(labels), "annotations": annotations},
        "spec": {
            "ingressClassName": edge.ingress.class_name,
            "tls": [{"hosts": list(edge.hosts), "secretName": tls_secret_name(edge)}],
            "rules": [{"host": host, "http": {"paths": paths}} for host in edge.hosts],
        },
    }


def edge_manifests(
    edge: EdgeSettings, namespace: str, instance: str, version: str, backends: Mapping[str, Backend]
) -> dict[str, dict[str, Any]]:
    """Every object of the edge, by logical name; empty when the stack has no public hosts."""
    if not edge.enabled:
        return {}
    labels = standard_labels("edge", instance, "edge", version)
    manifests: dict[str, dict[str, Any]] = {}
    if edge.tls.create_issuer != "none":
        manifests["edge-issuer"] = issuer_manifest(edge, namespace, labels)
    if edge.tls.issuer is not None and edge.mode == "gateway":
        # Ingress mode lets cert-manager's ingress-shim create the Certificate from the annotation.
        manifests["edge-certificate"] = certificate_manifest(edge, namespace, labels)
    if edge.mode == "gateway":
        manifests["edge-gateway"] = gateway_manifest(edge, namespace, labels)
        manifests["edge-https-route"] = https_route_manifest(edge, namespace, labels, backends)
        manifests["edge-http-redirect"] = redirect_route_manifest(edge, namespace, labels)
        if edge.rate_limit.enabled:
            manifests["edge-rate-limit"] = rate_limit_manifest(edge, namespace, labels)
    else:
        manifests["edge-ingress"] = ingress_manifest(edge, namespace, labels, backends)
    return manifests
