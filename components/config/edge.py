"""Settings of the edge: Gateway API or Ingress, hosts, routes, TLS, timeouts and rate limits."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from components.config.base import _DNS_NAME, DnsLabel, HttpPath, _check, _cross_field, _Strict


def _host(value: str) -> str:
    if value.startswith("*"):
        raise PydanticCustomError(
            "host", "wildcard host '{value}' is not allowed; list each host explicitly", {"value": value}
        )
    if not _DNS_NAME.match(value):
        raise PydanticCustomError(
            "host", "'{value}' is not a host name; example: support.example.com", {"value": value}
        )
    return value


EdgeMode = Literal["gateway", "ingress"]
# Where each mode's proxies usually run: the namespace NetworkPolicies admit to exposed services.
DEFAULT_EDGE_NAMESPACE: dict[str, str] = {"gateway": "envoy-gateway-system", "ingress": "ingress-nginx"}
ACME_SERVERS: dict[str, str] = {
    "acmeStaging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "acmeProduction": "https://acme-v02.api.letsencrypt.org/directory",
}
_NGINX_SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class GatewaySettings(_Strict):
    """Gateway API mode: the Gateway the program manages in the app namespace, and its listeners."""

    name: DnsLabel = "support-gateway"
    """Name of the Gateway (routes attach to it through parentRefs)."""
    class_name: DnsLabel = "eg"
    """gatewayClassName of the installed implementation (Envoy Gateway's default class is eg)."""
    https_section: DnsLabel = "https"
    """Listener (sectionName) that terminates TLS on port 443 and serves the routes."""
    http_section: DnsLabel = "http"
    """Plain-HTTP listener on port 80: only a redirect to HTTPS is attached to it."""


class IngressSettings(_Strict):
    """Ingress mode (ingress-nginx): class, upload size and streaming-safe proxying."""

    class_name: DnsLabel = "nginx"
    """ingressClassName of the controller."""
    body_size: Annotated[str, _check(_NGINX_SIZE, "nginx size", "25m")] = "25m"
    """Largest request body (attachments): nginx proxy-body-size."""


class TlsSettings(_Strict):
    """Certificates for the hosts: a cert-manager issuer, or an existing TLS Secret."""

    issuer: DnsLabel | None = None
    """cert-manager issuer that signs the hosts' certificate (created by the program when createIssuer is set)."""
    issuer_kind: Literal["ClusterIssuer", "Issuer"] = "ClusterIssuer"
    """Kind of that issuer: ClusterIssuer (cluster-wide) or Issuer (in the app namespace)."""
    secret_name: DnsLabel | None = None
    """An existing kubernetes.io/tls Secret in the app namespace to serve instead of a cert-manager certificate."""
    create_issuer: Literal["none", "selfSigned", "acmeStaging", "acmeProduction"] = "none"
    """Let the program create the issuer: selfSigned (dev), or Let's Encrypt staging/production over HTTP-01."""
    acme_email: str | None = None
    """ACME account e-mail (expiry notices); required with an ACME createIssuer."""

    @model_validator(mode="after")
    def _one_source(self) -> TlsSettings:
        if self.issuer and self.secret_name:
            raise _cross_field(
                "secretName", "set either issuer (cert-manager) or secretName (existing Secret), not both"
            )
        if self.create_issuer != "none" and not self.issuer:
            raise _cross_field("issuer", "createIssuer needs the issuer's name, e.g. issuer: letsencrypt-staging")
        if self.create_issuer in ACME_SERVERS and (not self.acme_email or not _EMAIL.match(self.acme_email)):
            raise _cross_field(
                "acmeEmail",
                "an ACME issuer needs the account e-mail for expiry notices, e.g. acmeEmail: ops@example.com",
            )
        return self


class EdgeTimeouts(_Strict):
    """How long the edge waits, long enough for streamed LLM replies."""

    request_seconds: Annotated[int, Field(ge=10, le=3600)] = 300
    """Whole request, client to response end (HTTPRoute timeouts.request, nginx proxy-send-timeout)."""
    backend_request_seconds: Annotated[int, Field(ge=10, le=3600)] = 300
    """One try against the backend (HTTPRoute timeouts.backendRequest, nginx proxy-read-timeout)."""

    @model_validator(mode="after")
    def _backend_within_request(self) -> EdgeTimeouts:
        if self.backend_request_seconds > self.request_seconds:
            raise _cross_field(
                "backendRequestSeconds",
                "{backend}s exceeds requestSeconds ({request}s); a backend try must fit in the request",
                backend=self.backend_request_seconds,
                request=self.request_seconds,
            )
        return self


class RateLimitSettings(_Strict):
    """Per-client request limits answered with 429."""

    enabled: bool = True
    """Limit requests per client IP address."""
    requests_per_minute: Annotated[int, Field(ge=1, le=100000)] = 600
    """Requests one client IP may make per minute before it gets 429."""
    scope: Literal["global", "local"] = "global"
    """Gateway mode: global counts across proxy replicas (Envoy Gateway's rate limit service must be
    enabled); local counts per proxy replica. Ingress mode always counts per controller replica."""


class EdgeSettings(_Strict):
    """How users reach the platform: routes to exposed services, TLS, limits and timeouts."""

    mode: EdgeMode = "gateway"
    """gateway: Gateway API HTTPRoutes (default); ingress: an Ingress for clusters that still need it."""
    namespace: DnsLabel | None = None
    """Namespace of the edge proxies allowed to reach exposed services (default: envoy-gateway-system
    in gateway mode, ingress-nginx in ingress mode)."""
    hosts: list[Annotated[str, AfterValidator(_host)]] = []
    """Public host names (no wildcards); required in production. No hosts: no edge resources."""
    routes: dict[HttpPath, DnsLabel] = {"/api": "api", "/": "web"}
    """Path prefix -> service. Only exposed services are routable; workers never are."""
    gateway: GatewaySettings = GatewaySettings()
    ingress: IngressSettings = IngressSettings()
    tls: TlsSettings = TlsSettings()
    timeouts: EdgeTimeouts = EdgeTimeouts()
    rate_limit: RateLimitSettings = RateLimitSettings()
    hsts_max_age_seconds: Annotated[int, Field(ge=0, le=63072000)] = 31536000
    """Strict-Transport-Security max-age of every response (gateway mode's header modifier)."""

    @field_validator("hosts")
    @classmethod
    def _unique_hosts(cls, hosts: list[str]) -> list[str]:
        duplicates = sorted({h for h in hosts if hosts.count(h) > 1})
        if duplicates:
            raise PydanticCustomError("unique", "hosts must be unique; repeated: {d}", {"d": ", ".join(duplicates)})
        return hosts

    @property
    def proxy_namespace(self) -> str:
        return self.namespace or DEFAULT_EDGE_NAMESPACE[self.mode]

    @property
    def enabled(self) -> bool:
        return bool(self.hosts)
