"""Stack settings: one frozen pydantic model tree, read from structured stack config, validated once.

Every problem is collected and reported together, each line naming the config path
(``support-platform:app.services.api.replicas``), what is wrong and what is allowed. Nothing here
touches the Pulumi engine: ``load_settings`` takes plain dicts, so the rules are testable directly.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

PROJECT = "support-platform"

Environment = Literal["dev", "staging", "production"]
ENVIRONMENTS: tuple[str, ...] = ("dev", "staging", "production")

# External secrets: set with `pulumi config set --secret <key>`, never in a structured object so that
# no plaintext settings read ever touches them.
EXTERNAL_SECRET_KEYS: dict[str, str] = {
    "llmApiKey": "API key of the LLM provider / agent framework",
    "alertWebhookUrl": "webhook URL Alertmanager posts alerts to",
    "registryPassword": "password or token of the image registry used by service builds",
}
# Required outside dev; registryPassword only when a service builds its image.
REQUIRED_OUTSIDE_DEV = ("llmApiKey", "alertWebhookUrl")

STRUCTURED_KEYS = ("environment", "target", "namespaces", "secrets", "data", "edge", "network", "app", "monitoring")

# Credentials a service may receive through `secretEnv`, and the connection each one implies.
Credential = Literal["databaseUrl", "redisUrl", "chromaToken", "secretKey", "llmApiKey"]
CREDENTIAL_CONNECTION: dict[str, str | None] = {
    "databaseUrl": "postgres",
    "redisUrl": "redis",
    "chromaToken": "chroma",
    "secretKey": None,
    "llmApiKey": "llm",
}
DATA_SERVICES = ("postgres", "redis", "chroma")
EXTERNAL_CONNECTIONS = ("llm",)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CPU = re.compile(r"^(\d+(\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# repository[:tag][@sha256:digest]; the repository may carry a registry host with a port.
_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@sha256:[0-9a-f]{64})?$"
)
# Whole words of an env name: LLM_MAX_TOKENS is a count, ACCESS_TOKEN is a secret.
_SECRET_NAME = re.compile(
    r"(^|_)(PASSWORD|PASSWD|SECRET|SECRET_KEY|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIALS?|DSN)($|_)", re.IGNORECASE
)
_URL_WITH_CREDENTIALS = re.compile(r"://[^/\s:@]+:[^/\s@]+@")

_MEMORY_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def cpu_millicores(value: str) -> float:
    match = _CPU.match(value)
    if not match:
        raise ValueError(value)
    number = float(match.group(1))
    return number if match.group(3) else number * 1000


def memory_bytes(value: str) -> float:
    match = _MEMORY.match(value)
    if not match:
        raise ValueError(value)
    return float(match.group(1)) * _MEMORY_UNITS[match.group(3) or ""]


def _check(pattern: re.Pattern[str], what: str, example: str, max_len: int | None = None) -> Any:
    def validate(value: str) -> str:
        if not pattern.match(value) or (max_len is not None and len(value) > max_len):
            limit = f", at most {max_len} characters" if max_len else ""
            raise PydanticCustomError(
                "format",
                "'{value}' is not a valid {what}{limit}; example: {example}",
                {"value": value, "what": what, "limit": limit, "example": example},
            )
        return value

    return AfterValidator(validate)


DnsLabel = Annotated[str, _check(_DNS_LABEL, "DNS label (lowercase letters, digits and '-')", "support-app", 63)]
DnsName = Annotated[str, _check(_DNS_NAME, "DNS name", "postgres.support-data.svc.cluster.local")]
PortName = Annotated[str, _check(_PORT_NAME, "port name (lowercase letters, digits, '-')", "http", 15)]
EnvName = Annotated[str, _check(_ENV_NAME, "environment variable name", "LOG_LEVEL")]
CpuQuantity = Annotated[str, _check(_CPU, "CPU quantity", "250m or 1")]
MemoryQuantity = Annotated[str, _check(_MEMORY, "memory quantity", "256Mi")]
Port = Annotated[int, Field(ge=1, le=65535)]
AbsolutePath = Annotated[str, Field(pattern=r"^/[^\s]*$")]
HttpPath = Annotated[str, Field(pattern=r"^/[^\s]*$")]


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value)
    except ValueError:
        raise PydanticCustomError(
            "cidr", "'{value}' is not a CIDR block; example: 10.0.0.0/8", {"value": value}
        ) from None
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]


def _cross_field(field: str, message: str, **ctx: Any) -> PydanticCustomError:
    # `field` is the sub-path below the model that failed; format_errors appends it to the location
    # so the message names the exact config path even for rules that involve several fields.
    return PydanticCustomError("cross_field", message, {"field": field, **ctx})


class _Strict(BaseModel):
    """Frozen, camelCase keys in config, unknown keys rejected."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        # The string under a field is its description: in the JSON schema and the README reference.
        use_attribute_docstrings=True,
    )


class TargetSettings(_Strict):
    """Where the Kubernetes provider sends objects: a render directory or a cluster context."""

    mode: Literal["render", "cluster"]
    """render: write manifests to renderDirectory (dev only); cluster: deploy to a kubeconfig context."""
    render_directory: str | None = None
    """Render mode: directory for the manifests, relative to the project."""
    context: str | None = None
    """Cluster mode: the kubeconfig context to deploy to."""
    kubeconfig: str | None = None
    """Cluster mode: path of the kubeconfig file; default: the usual lookup ($KUBECONFIG, ~/.kube/config)."""

    @field_validator("kubeconfig")
    @classmethod
    def _path_not_contents(cls, value: str | None) -> str | None:
        # Contents carry credentials and this key is committed in plaintext: only a path belongs here.
        if value is not None and ("\n" in value or "apiVersion" in value or "client-key-data" in value):
            raise PydanticCustomError(
                "format",
                "looks like kubeconfig contents, which hold credentials and would be committed in plaintext; "
                "give the path of the file instead (or leave it out and set KUBECONFIG)",
                {},
            )
        return value

    @model_validator(mode="after")
    def _mode_fields(self) -> TargetSettings:
        if self.mode == "render":
            if not self.render_directory:
                raise _cross_field("renderDirectory", "mode 'render' needs renderDirectory, e.g. rendered/dev")
            if self.context or self.kubeconfig:
                raise _cross_field(
                    "context",
                    "mode 'render' cannot be combined with context/kubeconfig; remove them or use mode 'cluster'",
                )
        else:
            if not self.context:
                raise _cross_field(
                    "context", "mode 'cluster' needs the kubeconfig context to deploy to, e.g. staging-admin"
                )
            if self.render_directory:
                raise _cross_field("renderDirectory", "renderDirectory only applies to mode 'render'; remove it")
        return self


class NamespaceSettings(_Strict):
    app: DnsLabel = "support-app"
    """Namespace of the app tier (created, with PSS restricted and default-deny)."""

    @field_validator("app")
    @classmethod
    def _own_namespace(cls, value: str) -> str:
        # The platform labels, locks down and may delete its namespaces: never a shared system one.
        if value == "default" or value.startswith("kube-"):
            raise PydanticCustomError(
                "format", "'{value}' is a shared system namespace; use one of the platform's own", {"value": value}
            )
        return value


class SecretsSettings(_Strict):
    rotation: Annotated[int, Field(ge=0)] = 0
    """Keeper of every generated credential: bump it to rotate them all."""
    password_length: Annotated[int, Field(ge=24, le=128)] = 32
    """Length of generated passwords and tokens (alphanumeric)."""


class Endpoint(_Strict):
    """A data service the app connects to. In-cluster ones name their namespace (NetworkPolicies
    select it); external ones give the CIDR their address lies in."""

    host: DnsName
    """DNS name the app connects to."""
    port: Port
    """TCP port."""
    namespace: DnsLabel | None = None
    """In-cluster service: its namespace (egress is allowed to that namespace only)."""
    cidr: Cidr | None = None
    """External service: the CIDR its address lies in (egress is allowed to it only)."""

    @model_validator(mode="after")
    def _placement(self) -> Endpoint:
        if (self.namespace is None) == (self.cidr is None):
            raise _cross_field(
                "namespace",
                "give exactly one of namespace (in-cluster service) or cidr (external service); "
                "`namespace: null` drops the default namespace",
            )
        return self


class PostgresEndpoint(Endpoint):
    database: DnsLabel = "support"
    """Database name in DATABASE_URL."""
    user: DnsLabel = "support"
    """Database user in DATABASE_URL (its password is generated)."""


class RedisEndpoint(Endpoint):
    database: Annotated[int, Field(ge=0, le=15)] = 0
    """Redis logical database in REDIS_URL."""


class DataSettings(_Strict):
    postgres: PostgresEndpoint = PostgresEndpoint(
        host="postgres.support-data.svc.cluster.local", port=5432, namespace="support-data"
    )
    redis: RedisEndpoint = RedisEndpoint(
        host="redis.support-data.svc.cluster.local", port=6379, namespace="support-data"
    )
    chroma: Endpoint = Endpoint(host="chroma.support-data.svc.cluster.local", port=8000, namespace="support-data")


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


class DnsSettings(_Strict):
    namespace: DnsLabel = "kube-system"
    """Namespace of the cluster DNS; every pod may reach it on port 53."""
    pod_labels: dict[str, str] = {"k8s-app": "kube-dns"}
    """Labels of the cluster DNS pods."""


class LlmEgressSettings(_Strict):
    """The external LLM API: HTTPS to public addresses only, never into the cluster's private ranges."""

    cidr: Cidr = "0.0.0.0/0"
    """Where services that connect to 'llm' may send traffic."""
    except_cidrs: list[Cidr] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]
    """Ranges excluded from that egress: private and carrier-grade NAT networks (where cluster pod and
    service ranges live) and the link-local metadata endpoint."""
    ports: list[Port] = [443]
    """Ports of the LLM API."""


class NetworkSettings(_Strict):
    monitoring_namespace: DnsLabel = "support-monitoring"
    """Namespace allowed to scrape metrics ports."""
    dns: DnsSettings = DnsSettings()
    llm_egress: LlmEgressSettings = LlmEgressSettings()


_PROM_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_PROM_SIZE = re.compile(r"^[0-9]+(B|KB|MB|GB|TB|PB|EB)$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_QUALIFIED_LABEL = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
PromDuration = Annotated[str, _check(_PROM_DURATION, "Prometheus duration", "15d or 1h30m")]
PromSize = Annotated[str, _check(_PROM_SIZE, "Prometheus size (B, KB, MB, GB, TB)", "8GB")]
Fraction = Annotated[float, Field(gt=0, lt=1)]
# Secret config keys a receiver may take its URL from.
ReceiverSecret = Literal["alertWebhookUrl"]


class RetentionSettings(_Strict):
    time: PromDuration = "15d"
    """Prometheus --storage.tsdb.retention.time."""
    size: PromSize = "8GB"
    """Prometheus --storage.tsdb.retention.size; keep it below storage.prometheus."""


class MonitoringStorageSettings(_Strict):
    prometheus: MemoryQuantity = "10Gi"
    """Size of Prometheus' PersistentVolumeClaim."""
    alertmanager: MemoryQuantity = "1Gi"
    """Size of Alertmanager's PersistentVolumeClaim (silences, notification log)."""
    storage_class: DnsName | None = None
    """StorageClass of the claims; default: the cluster's default class."""


class ThresholdSettings(_Strict):
    """Alert thresholds; the defaults are the support system's own values."""

    error_rate: Fraction = 0.05
    """HighErrorRate: share of 5xx responses per service over 5 minutes."""
    response_time_p95_seconds: Annotated[float, Field(gt=0, le=300)] = 2.0
    """HighResponseTime: p95 request latency per service over 5 minutes."""
    database_connections: Fraction = 0.8
    """DatabaseConnectionsHigh: PostgreSQL connections as a share of max_connections."""
    escalation_rate: Fraction = 0.2
    """EscalationRateHigh: chat escalations per chat message over 15 minutes."""
    rag_failure_rate: Fraction = 0.1
    """RAGQueryFailureRate: share of RAG queries that did not succeed over 5 minutes."""
    redis_memory: Fraction = 0.9
    """RedisMemoryHigh: used memory as a share of maxmemory."""
    volume_free: Fraction = 0.1
    """PersistentVolumeFillingUp: fires when less than this share of a volume is free."""
    crash_restarts: Annotated[int, Field(ge=1, le=100)] = 3
    """PodCrashLooping: container restarts within 15 minutes."""
    backup_max_age: PromDuration = "26h"
    """BackupMissing: longest time without a successful backup (a daily backup plus slack)."""
    min_request_rate: Annotated[float, Field(ge=0)] = 0.01
    """Requests per second below which ratio alerts stay silent (no traffic is not an outage)."""


def _objective(value: float) -> float:
    if not 0 < value < 100:
        raise PydanticCustomError(
            "format",
            "an SLO target must be above 0 and below 100 % (got {value}); 100 % leaves no error budget",
            {"value": value},
        )
    return value


Objective = Annotated[float, AfterValidator(_objective)]


class SloSettings(_Strict):
    """The platform's SLO: each objective becomes recording rules and multi-window burn-rate alerts."""

    availability: Objective = 99.5
    """Percent of requests answered without a 5xx."""
    latency_seconds: Annotated[float, Field(gt=0, le=300)] = 2.0
    """Latency threshold of the latency objective."""
    latency: Objective = 95.0
    """Percent of requests faster than latencySeconds (95: the p95 is under latencySeconds)."""
    errors: Objective = 99.0
    """Percent of requests without an application error (errors_total)."""


class ReceiverSettings(_Strict):
    """Where Alertmanager posts one class of alerts: a webhook URL, given plainly or from secret config."""

    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None
    """Webhook URL (only one that carries no credentials; otherwise use urlSecret)."""
    url_secret: ReceiverSecret | None = None
    """Secret config key holding the webhook URL."""

    @model_validator(mode="after")
    def _one_url(self) -> ReceiverSettings:
        if (self.url is None) == (self.url_secret is None):
            raise _cross_field("url", "a receiver needs exactly one webhook: url, or urlSecret (e.g. alertWebhookUrl)")
        if self.url is not None and _URL_WITH_CREDENTIALS.search(self.url):
            raise _cross_field("url", "carries credentials, which would be committed; use urlSecret")
        return self


# The name of a secret config key, not a secret.
_DEFAULT_RECEIVER = ReceiverSettings(url_secret="alertWebhookUrl")  # noqa: S106


class ReceiversSettings(_Strict):
    critical: ReceiverSettings = _DEFAULT_RECEIVER
    """Receiver of severity critical (pages)."""
    warning: ReceiverSettings = _DEFAULT_RECEIVER
    """Receiver of severity warning (tickets)."""
    watchdog: ReceiverSettings = _DEFAULT_RECEIVER
    """Dead-man's-switch receiver of the always-firing Watchdog alert."""


class AlertRoutingSettings(_Strict):
    group_by: list[Annotated[str, _check(_LABEL_NAME, "label name", "alertname")]] = [
        "alertname",
        "namespace",
        "service",
    ]
    """Labels Alertmanager groups notifications by."""
    group_wait: PromDuration = "30s"
    """Wait before the first notification of a new group."""
    group_interval: PromDuration = "5m"
    """Wait before notifying about new alerts in a group."""
    repeat_interval: PromDuration = "4h"
    """Resend interval of a still-firing alert (critical and warning)."""
    watchdog_repeat_interval: PromDuration = "1m"
    """Resend interval of the Watchdog heartbeat; the dead-man's switch expects it this often."""


LabelMap = dict[
    Annotated[str, _check(_QUALIFIED_LABEL, "label key", "release")],
    Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")],
]


class OperatorSettings(_Strict):
    """Operator mode: the labels the cluster's Prometheus Operator and Grafana sidecar select."""

    selector_labels: LabelMap = {}
    """Labels the operator's Prometheus selects ServiceMonitors, PodMonitors, PrometheusRules and
    AlertmanagerConfigs by (e.g. release: kube-prometheus-stack); required in operator mode."""
    dashboard_label: LabelMap = {"grafana_dashboard": "1"}
    """Label the Grafana dashboard sidecar loads ConfigMaps by."""
    prometheus_pod_labels: LabelMap = {"app.kubernetes.io/name": "prometheus"}
    """Labels of the operator's Prometheus pods (in network.monitoringNamespace): the only pods the
    app's NetworkPolicies admit to metrics ports."""


def _monitoring_image(value: str) -> str:
    match = _IMAGE.match(value)
    if not match or not (match.group("tag") or _DIGEST.search(value)) or match.group("tag") == "latest":
        raise PydanticCustomError(
            "image",
            "'{value}' is not a pinned image reference; use repository:tag or repository@sha256:<digest>",
            {"value": value},
        )
    return value


MonitoringImage = Annotated[str, AfterValidator(_monitoring_image)]


class MonitoringImages(_Strict):
    """Images of the bundled servers; the Prometheus and Alertmanager versions match the pinned
    promtool and amtool that check their configuration."""

    prometheus: MonitoringImage = "quay.io/prometheus/prometheus:v3.16.0"
    """Prometheus server image."""
    alertmanager: MonitoringImage = "quay.io/prometheus/alertmanager:v0.35.0"
    """Alertmanager image."""
    grafana: MonitoringImage = "docker.io/grafana/grafana:11.6.0"
    """Grafana image."""


class GrafanaSettings(_Strict):
    allow_from_namespaces: list[DnsLabel] = []
    """Namespaces whose pods may reach Grafana (e.g. the edge's); none by default: use kubectl port-forward."""


class MonitoringSettings(_Strict):
    mode: Literal["bundled", "operator", "none"] = "bundled"
    """bundled: deploy Prometheus, Alertmanager and Grafana; operator: emit Prometheus Operator resources;
    none: no monitoring."""
    retention: RetentionSettings = RetentionSettings()
    storage: MonitoringStorageSettings = MonitoringStorageSettings()
    thresholds: ThresholdSettings = ThresholdSettings()
    slo: SloSettings = SloSettings()
    receivers: ReceiversSettings = ReceiversSettings()
    routing: AlertRoutingSettings = AlertRoutingSettings()
    operator: OperatorSettings = OperatorSettings()
    images: MonitoringImages = MonitoringImages()
    grafana: GrafanaSettings = GrafanaSettings()
    api_server_cidr: Cidr = "0.0.0.0/0"
    """Where the Kubernetes API server lies: Prometheus' only egress besides scrape targets (ports 443, 6443)."""
    runbook_base_url: Annotated[str, Field(pattern=r"^https?://[^\s]+[^/\s]$")] = (
        "https://runbooks.support-platform.example.com/alerts"
    )
    """Base of every alert's runbook_url (the alert name is appended in lowercase)."""
    scrape_interval: PromDuration = "30s"
    """Prometheus scrape and rule evaluation interval."""

    @model_validator(mode="after")
    def _operator_selector(self) -> MonitoringSettings:
        if self.mode == "operator" and not self.operator.selector_labels:
            raise _cross_field(
                "operator.selectorLabels",
                "operator mode needs the labels the cluster's Prometheus selects by, "
                "e.g. {release: kube-prometheus-stack}",
            )
        return self


class ResourceAmounts(_Strict):
    cpu: CpuQuantity
    memory: MemoryQuantity


class ResourceLimits(_Strict):
    cpu: CpuQuantity | None = None
    """CPU limit; `null` drops a built-in one (anchors disagree on CPU limits: the policy pack decides per stack)."""
    memory: MemoryQuantity
    """Memory limit: always required (an unbounded pod takes its node down with it)."""


class ResourceSettings(_Strict):
    requests: ResourceAmounts
    limits: ResourceLimits

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ResourceSettings:
        if self.limits.cpu is not None and cpu_millicores(self.requests.cpu) > cpu_millicores(self.limits.cpu):
            raise _cross_field(
                "requests.cpu",
                "request {req} exceeds limit {lim}; raise limits.cpu or lower requests.cpu",
                req=self.requests.cpu,
                lim=self.limits.cpu,
            )
        if memory_bytes(self.requests.memory) > memory_bytes(self.limits.memory):
            raise _cross_field(
                "requests.memory",
                "request {req} exceeds limit {lim}; raise limits.memory or lower requests.memory",
                req=self.requests.memory,
                lim=self.limits.memory,
            )
        return self


class AutoscalingSettings(_Strict):
    enabled: bool = True
    """Create a HorizontalPodAutoscaler: on as soon as an autoscaling block is given (it then owns replicas)."""
    min_replicas: Annotated[int, Field(ge=1)] | None = None
    """Fewest replicas; production needs >= 2."""
    max_replicas: Annotated[int, Field(ge=1)] | None = None
    """Most replicas."""
    cpu_utilization: Annotated[int, Field(ge=1, le=100)] = 70
    """Target average CPU utilisation, percent of requests."""
    memory_utilization: Annotated[int, Field(ge=1, le=100)] = 80
    """Target average memory utilisation, percent of requests."""

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingSettings:
        if not self.enabled:
            return self
        if self.min_replicas is None or self.max_replicas is None:
            raise _cross_field("minReplicas", "autoscaling needs minReplicas and maxReplicas (or enabled: false)")
        if self.min_replicas > self.max_replicas:
            raise _cross_field(
                "minReplicas",
                "minReplicas ({lo}) must be <= maxReplicas ({hi})",
                lo=self.min_replicas,
                hi=self.max_replicas,
            )
        return self


class ProbeSettings(_Strict):
    """An HTTP GET on `path`, or a TCP check when `path` is omitted, against the named port."""

    path: HttpPath | None = None
    """HTTP path to GET; omitted: a TCP connect check."""
    port: PortName = "http"
    """Name of the port to probe."""
    initial_delay_seconds: Annotated[int, Field(ge=0)] = 0
    period_seconds: Annotated[int, Field(ge=1)] = 10
    timeout_seconds: Annotated[int, Field(ge=1)] = 2
    failure_threshold: Annotated[int, Field(ge=1)] = 3


class ProbesSettings(_Strict):
    startup: ProbeSettings
    readiness: ProbeSettings
    liveness: ProbeSettings

    @model_validator(mode="after")
    def _liveness_is_not_readiness(self) -> ProbesSettings:
        # Liveness restarts the pod; if it checked what readiness checks (dependencies), a database
        # outage would restart every replica in a loop.
        if (self.liveness.path, self.liveness.port) == (self.readiness.path, self.readiness.port):
            raise _cross_field(
                "liveness.path",
                "liveness must not check the same endpoint as readiness ({path}); point it at a "
                "dependency-free endpoint such as /health/liveness, or omit path for a TCP check",
                path=self.readiness.path or "tcp",
            )
        return self


_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_BUILD_ARG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STAGE = re.compile(r"^[a-z][a-z0-9_.-]*$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,127}$")
_SOURCE_URL = re.compile(r"^https?://[^\s\"'$\\]+$")
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")


class BuildSettings(_Strict):
    """Build the image with pulumi-docker and push it; the pushed digest goes into the Deployment."""

    context: str
    """Build context directory, relative to the project; it must exist and must not contain the project."""
    dockerfile: str = "Dockerfile"
    """Dockerfile, relative to the context; it must exist."""
    repository: str
    """Repository to push to, without tag (registry host first)."""
    tag: Annotated[str, _check(_TAG, "image tag", "1.5.0")]
    """Tag to push; the deployed reference is the pushed digest. Also the image's version label."""
    platform: Annotated[str, _check(_PLATFORM, "platform", "linux/amd64")] = "linux/amd64"
    """Target platform of the build."""
    target: Annotated[str, _check(_STAGE, "build stage name", "runtime")] | None = None
    """Stage of a multi-stage Dockerfile to build; default: the last one."""
    args: dict[Annotated[str, _check(_BUILD_ARG, "build argument name", "PYTHON_VERSION")], str] = {}
    """Build arguments (ARG); never secrets: their values are readable in the image's history."""
    revision: Annotated[str, _check(_REVISION, "source revision", "4f53cda")] | None = None
    """org.opencontainers.image.revision; default: the last git commit that touched the context (see README)."""
    source: Annotated[str, _check(_SOURCE_URL, "source URL", "https://github.com/acme/support-api")] | None = None
    """org.opencontainers.image.source: URL of the source repository."""
    registry_username: str | None = None
    """Registry user; its password is the secret config key registryPassword."""

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        match = _IMAGE.match(value)
        if not match or match.group("tag") or "@" in value:
            raise PydanticCustomError(
                "format",
                "'{value}' is not a repository without tag; example: registry.example.com/support/api",
                {"value": value},
            )
        return value

    @field_validator("args")
    @classmethod
    def _no_secret_args(cls, args: dict[str, str]) -> dict[str, str]:
        for name, value in args.items():
            if _SECRET_NAME.search(name) or _URL_WITH_CREDENTIALS.search(value):
                raise PydanticCustomError(
                    "secret_in_env",
                    "args.{name} looks like a secret; build arguments are stored in the image's history and in "
                    "plaintext stack config. Registry credentials come from `pulumi config set --secret "
                    "registryPassword`; other build secrets do not belong in a build argument",
                    {"name": name},
                )
        return args

    @model_validator(mode="after")
    def _paths_exist(self, info: ValidationInfo) -> BuildSettings:
        # Checked here, not by the provider, so a wrong path stops the program before any resource.
        project_dir = (info.context or {}).get("project_dir")
        for field_name, value in (("context", self.context), ("dockerfile", self.dockerfile)):
            if os.path.isabs(value):
                raise _cross_field(
                    field_name,
                    "'{value}' is absolute; give it relative to the {base} so the stack works in every checkout",
                    value=value,
                    base="project" if field_name == "context" else "context",
                )
        if project_dir is None:
            return self
        context = os.path.normpath(os.path.join(project_dir, self.context))
        if not os.path.isdir(context):
            raise _cross_field(
                "context",
                "build context '{value}' is not a directory (resolved against the project: {resolved})",
                value=self.context,
                resolved=os.path.relpath(context, project_dir),
            )
        project = os.path.realpath(project_dir)
        if os.path.commonpath([project, os.path.realpath(context)]) == os.path.realpath(context):
            raise _cross_field(
                "context",
                "build context '{value}' contains the project, whose state and rendered manifests change on every "
                "up (so every up would rebuild); put the app's sources in a directory of their own",
                value=self.context,
            )
        dockerfile = os.path.normpath(os.path.join(context, self.dockerfile))
        if not os.path.isfile(dockerfile):
            raise _cross_field(
                "dockerfile",
                "Dockerfile '{value}' not found in the build context (looked for {resolved}, relative to the project)",
                value=self.dockerfile,
                resolved=os.path.relpath(dockerfile, project_dir),
            )
        return self


class ServiceSettings(_Strict):
    enabled: bool = True
    """Deploy this service (agent and mcp are off unless enabled)."""
    component: DnsLabel
    """Value of the app.kubernetes.io/component label."""
    image: str | None = None
    """Pinned image: repository:tag, or repository@sha256:digest (required in production)."""
    build: BuildSettings | None = None
    """Instead of image: build and push with pulumi-docker; the pushed digest is deployed."""
    command: list[str] | None = None
    """Container command (entrypoint override)."""
    args: list[str] | None = None
    """Container arguments."""
    ports: dict[PortName, Port]
    """Named container ports; 'http' is required (probes and the Service use it)."""
    metrics_path: HttpPath | None = None
    """Prometheus metrics path; served on the 'metrics' port if named, else on 'http'."""
    probes: ProbesSettings
    """startup, readiness and liveness probes; liveness must not check what readiness checks."""
    replicas: Annotated[int, Field(ge=1)]
    """Replica count when not autoscaled (default: app.defaults.replicas)."""
    autoscaling: AutoscalingSettings = AutoscalingSettings(enabled=False)
    """HPA settings (default: app.defaults.autoscaling)."""
    resources: ResourceSettings
    """requests and limits (cpu, memory); requests must not exceed limits."""
    env: Annotated[dict[EnvName, str], Field()] = {}
    """Non-secret environment (lands in a ConfigMap); secret-looking names or values are refused."""
    secret_env: dict[EnvName, Credential] = {}
    """Environment from Kubernetes Secrets: ENV_NAME -> credential name."""
    connects_to: list[str] = []
    """Declared connections (postgres, redis, chroma, llm, or a service); NetworkPolicies derive from them."""
    writable_paths: list[AbsolutePath] = ["/tmp"]
    """Paths mounted as emptyDir, since the root filesystem is read-only."""
    run_as_user: Annotated[int, Field(ge=10000)] = 10001
    """UID (and GID) the containers run as; at least 10000."""
    expose: bool = False
    """Reachable from the edge namespace."""
    pre_stop_sleep_seconds: Annotated[int, Field(ge=0, le=60)] = 5
    """preStop sleep so endpoints drop the pod before it drains."""
    termination_grace_period_seconds: Annotated[int, Field(ge=1)] | None = None
    """Default: preStop + app.maxStreamSeconds + 15; if set, must exceed preStop + maxStreamSeconds."""

    @field_validator("env", mode="before")
    @classmethod
    def _scalars_as_strings(cls, value: Any) -> Any:
        # YAML turns `DB_POOL_SIZE: 10` into an int; environment values are strings either way.
        if isinstance(value, Mapping):
            return {
                k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for k, v in value.items()
            }
        return value

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        # A field check, not a model check: reported even when other fields of the service are wrong.
        # `enabled` is declared before `image`, so it is already in info.data; a disabled service
        # deploys nothing and needs no digest.
        enabled = info.data.get("enabled", True)
        if enabled and (info.context or {}).get("environment") == "production" and not _DIGEST.search(value):
            raise PydanticCustomError(
                "image",
                "production requires an image pinned by digest, got '{value}'; use repository@sha256:<digest>",
                {"value": value},
            )
        match = _IMAGE.match(value)
        if not match or not (match.group("tag") or _DIGEST.search(value)):
            raise PydanticCustomError(
                "image",
                "'{value}' is not a pinned image reference; use repository:tag or "
                "repository@sha256:<digest>, e.g. ghcr.io/acme/api:1.4.2",
                {"value": value},
            )
        if match.group("tag") == "latest":
            raise PydanticCustomError(
                "image", "'{value}' uses the mutable tag 'latest'; pin a version tag or a digest", {"value": value}
            )
        return value

    @field_validator("env")
    @classmethod
    def _no_secrets_in_env(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if _SECRET_NAME.search(name) or _URL_WITH_CREDENTIALS.search(value):
                raise PydanticCustomError(
                    "secret_in_env",
                    "env.{name} looks like a secret; plain env values land in a ConfigMap. Reference a "
                    "credential under secretEnv instead (one of: {allowed})",
                    {"name": name, "allowed": ", ".join(CREDENTIAL_CONNECTION)},
                )
        return env

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> ServiceSettings:
        if self.enabled and (self.image is None) == (self.build is None):
            raise _cross_field("image", "give exactly one of image (a pinned reference) or build (a build context)")
        if "http" not in self.ports:
            raise _cross_field("ports", "a port named 'http' is required (probes and the Service use it)")
        numbers = list(self.ports.values())
        duplicates = sorted({p for p in numbers if numbers.count(p) > 1})
        if duplicates:
            raise _cross_field("ports", "port numbers must be unique; {dups} used more than once", dups=duplicates)
        for probe_name in ("startup", "readiness", "liveness"):
            probe: ProbeSettings = getattr(self.probes, probe_name)
            if probe.port not in self.ports:
                raise _cross_field(
                    f"probes.{probe_name}.port",
                    "probe port '{port}' is not one of ports ({known})",
                    port=probe.port,
                    known=", ".join(self.ports),
                )
        for env_name, credential in self.secret_env.items():
            needed = CREDENTIAL_CONNECTION[credential]
            if needed is not None and needed not in self.connects_to:
                raise _cross_field(
                    f"secretEnv.{env_name}",
                    "credential '{credential}' is for {needed}, which connectsTo does not declare; "
                    "add '{needed}' to connectsTo",
                    credential=credential,
                    needed=needed,
                )
        overlap = sorted(set(self.env) & set(self.secret_env))
        if overlap:
            raise _cross_field("env", "{names} set in both env and secretEnv; keep one", names=", ".join(overlap))
        if self.enabled:
            _production_min_replicas(self.autoscaling, info)
        return self

    @property
    def http_port(self) -> int:
        return self.ports["http"]

    @property
    def metrics_port_name(self) -> str:
        return "metrics" if "metrics" in self.ports else "http"

    @property
    def min_replicas(self) -> int:
        """The fewest pods that run in steady state: what disruption budgets and spreading key off."""
        if self.autoscaling.enabled and self.autoscaling.min_replicas is not None:
            return self.autoscaling.min_replicas
        return self.replicas


def _production_min_replicas(autoscaling: AutoscalingSettings, info: ValidationInfo) -> None:
    minimum = autoscaling.min_replicas
    if (info.context or {}).get("environment") == "production" and autoscaling.enabled and (minimum or 2) < 2:
        raise _cross_field("autoscaling.minReplicas", "production needs minReplicas >= 2 to survive a node drain")


class AppDefaults(_Strict):
    replicas: Annotated[int, Field(ge=1)] = 1
    """Replicas of every service that sets none."""
    autoscaling: AutoscalingSettings = AutoscalingSettings(enabled=False)
    """Autoscaling of every service; a service's own keys are merged over it."""

    @model_validator(mode="after")
    def _production(self, info: ValidationInfo) -> AppDefaults:
        # Checked here too so that the problem is reported where it was written (the copies every
        # service inherits are then folded into this one line).
        _production_min_replicas(self.autoscaling, info)
        return self


class AppSettings(_Strict):
    defaults: AppDefaults = AppDefaults()
    # The longest streamed LLM reply: pods get this long to finish in-flight streams on shutdown.
    max_stream_seconds: Annotated[int, Field(ge=1, le=3600)] = 120
    """Longest streamed LLM reply; shutdown waits this long for in-flight streams."""
    cors_origins: list[str] = []
    """Origins the api accepts (BACKEND_CORS_ORIGINS of exposed services)."""
    services: dict[DnsLabel, ServiceSettings]
    """Services by name, merged over the built-in api, web, agent and mcp definitions."""

    @model_validator(mode="after")
    def _connections_and_grace(self) -> AppSettings:
        enabled = {name for name, svc in self.services.items() if svc.enabled}
        known = set(DATA_SERVICES) | set(EXTERNAL_CONNECTIONS) | enabled
        for name, svc in self.services.items():
            if not svc.enabled:
                continue
            for target in svc.connects_to:
                if target == name or target not in known:
                    raise _cross_field(
                        f"services.{name}.connectsTo",
                        "unknown connection '{target}'; allowed: {allowed}",
                        target=target,
                        allowed=", ".join(sorted(known - {name})),
                    )
            grace = svc.termination_grace_period_seconds
            needed = svc.pre_stop_sleep_seconds + self.max_stream_seconds
            if grace is not None and grace <= needed:
                raise _cross_field(
                    f"services.{name}.terminationGracePeriodSeconds",
                    "{grace}s does not outlast preStop ({pre}s) plus the longest streamed reply "
                    "(maxStreamSeconds {stream}s); use more than {needed}s or omit it",
                    grace=grace,
                    pre=svc.pre_stop_sleep_seconds,
                    stream=self.max_stream_seconds,
                    needed=needed,
                )
        if not enabled:
            raise _cross_field("services", "at least one service must be enabled")
        return self

    def enabled_services(self) -> dict[str, ServiceSettings]:
        return {name: svc for name, svc in self.services.items() if svc.enabled}

    def grace_period(self, svc: ServiceSettings) -> int:
        if svc.termination_grace_period_seconds is not None:
            return svc.termination_grace_period_seconds
        return svc.pre_stop_sleep_seconds + self.max_stream_seconds + 15


class Settings(_Strict):
    environment: Environment
    """dev, staging or production (default: the stack name); decides the production-only rules."""
    target: TargetSettings
    namespaces: NamespaceSettings = NamespaceSettings()
    secrets: SecretsSettings = SecretsSettings()
    data: DataSettings = DataSettings()
    edge: EdgeSettings = EdgeSettings()
    network: NetworkSettings = NetworkSettings()
    app: AppSettings
    monitoring: MonitoringSettings = MonitoringSettings()

    @model_validator(mode="after")
    def _production_edge(self) -> Settings:
        if self.environment == "production" and not self.edge.hosts:
            raise _cross_field("edge.hosts", "production needs at least one public host, served with TLS")
        if self.edge.hosts and not (self.edge.tls.issuer or self.edge.tls.secret_name):
            raise _cross_field(
                "edge.tls",
                "every host must be served with TLS: set issuer (a cert-manager issuer, e.g. "
                "letsencrypt-production) or secretName (an existing TLS Secret)",
            )
        if self.environment == "production" and self.monitoring.mode == "bundled":
            for server in ("prometheus", "alertmanager", "grafana"):
                image = getattr(self.monitoring.images, server)
                if not _DIGEST.search(image):
                    raise _cross_field(
                        f"monitoring.images.{server}",
                        "production requires an image pinned by digest, got '{image}'; use repository@sha256:<digest>",
                        image=image,
                    )
        if self.environment != "dev" and self.target.mode == "render":
            raise _cross_field("target.mode", "only dev may render instead of deploying; use mode 'cluster'")
        return self

    @model_validator(mode="after")
    def _edge_routes(self) -> Settings:
        if not self.edge.hosts:
            return self
        services = self.app.enabled_services()
        for path, target in self.edge.routes.items():
            svc = services.get(target)
            if svc is None or not svc.expose:
                exposed = sorted(n for n, s in services.items() if s.expose)
                raise _cross_field(
                    f"edge.routes.{path}",
                    "'{target}' is not an exposed service, so it cannot be routed (workers never are); "
                    "routable: {exposed}",
                    target=target,
                    exposed=", ".join(exposed) or "none",
                )
        unrouted = sorted(n for n, s in services.items() if s.expose and n not in self.edge.routes.values())
        if unrouted:
            raise _cross_field(
                "edge.routes",
                "exposed service(s) {names} have no route: add a path for each, or set expose: false so the "
                "edge cannot reach them",
                names=", ".join(unrouted),
            )
        stream = self.app.max_stream_seconds
        if self.edge.timeouts.backend_request_seconds <= stream:
            raise _cross_field(
                "edge.timeouts.backendRequestSeconds",
                "{value}s would cut streamed replies (app.maxStreamSeconds is {stream}s); use more than {stream}s",
                value=self.edge.timeouts.backend_request_seconds,
                stream=stream,
            )
        return self

    def builds(self) -> dict[str, BuildSettings]:
        return {n: s.build for n, s in self.app.enabled_services().items() if s.build is not None}


# The platform's services. A stack's `app.services.<name>` is merged over these, so a stack file
# states only what differs; a name not listed here must be given in full.
_API_PROBES = {
    "startup": {"path": "/health/liveness", "periodSeconds": 2, "failureThreshold": 60},
    "readiness": {"path": "/health/readiness", "periodSeconds": 5, "failureThreshold": 3},
    "liveness": {"path": "/health/liveness", "periodSeconds": 10, "failureThreshold": 3},
}
BUILTIN_SERVICES: dict[str, dict[str, Any]] = {
    "api": {
        "component": "backend",
        "ports": {"http": 8000},
        "metricsPath": "/metrics",
        "probes": _API_PROBES,
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "env": {
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "PROMETHEUS_ENABLED": "true",
            "API_V1_STR": "/api/v1",
            "DB_POOL_SIZE": "10",
            "DB_MAX_OVERFLOW": "20",
            "LLM_MODEL": "gpt-4o-mini",
            "LLM_FALLBACK_MODEL": "gpt-4o",
            "LLM_MAX_TOKENS": "2048",
            "RATE_LIMIT_PER_MINUTE": "60",
        },
        "secretEnv": {
            "DATABASE_URL": "databaseUrl",
            "REDIS_URL": "redisUrl",
            "CHROMA_TOKEN": "chromaToken",
            "SECRET_KEY": "secretKey",
            "LLM_API_KEY": "llmApiKey",
        },
        "connectsTo": ["postgres", "redis", "chroma", "llm"],
        "writablePaths": ["/tmp"],
        "expose": True,
    },
    "web": {
        "component": "frontend",
        "ports": {"http": 8080},
        "probes": {
            "startup": {"path": "/health", "periodSeconds": 2, "failureThreshold": 30},
            "readiness": {"path": "/health", "periodSeconds": 5},
            # TCP: nginx accepting connections is all liveness should ask.
            "liveness": {"periodSeconds": 10},
        },
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "250m", "memory": "128Mi"}},
        "connectsTo": ["api"],
        "writablePaths": ["/tmp", "/var/cache/nginx"],
        "expose": True,
    },
    "agent": {
        "enabled": False,
        "component": "worker",
        "command": ["python", "-m", "app.worker"],
        "ports": {"http": 8001},
        "metricsPath": "/metrics",
        "probes": _API_PROBES,
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "env": {"LOG_LEVEL": "INFO", "LOG_FORMAT": "json", "LLM_MODEL": "gpt-4o-mini"},
        "secretEnv": {"REDIS_URL": "redisUrl", "CHROMA_TOKEN": "chromaToken", "LLM_API_KEY": "llmApiKey"},
        "connectsTo": ["redis", "chroma", "llm"],
    },
    "mcp": {
        "enabled": False,
        "component": "tools",
        "ports": {"http": 8090},
        "metricsPath": "/metrics",
        "probes": _API_PROBES,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "env": {"LOG_LEVEL": "INFO", "LOG_FORMAT": "json"},
        "connectsTo": ["postgres"],
        "secretEnv": {"DATABASE_URL": "databaseUrl"},
    },
}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any], drop_nulls: bool = True) -> dict[str, Any]:
    """Merge mappings recursively; lists and scalars in `override` replace those in `base`, and a
    null removes the key (as in Helm values), so a stack can drop a built-in env var or credential.
    With drop_nulls=False a null is kept as a value (an edit of a stack file that says null)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None and drop_nulls:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value, drop_nulls)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _with_service_defaults(app: Any) -> Any:
    """Expand app.services: built-in definition, then app.defaults, then the stack's own values."""
    if not isinstance(app, Mapping):
        return app
    defaults = app.get("defaults", {})
    defaults = defaults if isinstance(defaults, Mapping) else {}
    inherited = {k: defaults[k] for k in ("replicas", "autoscaling") if k in defaults}
    inherited.setdefault("replicas", 1)
    services = app.get("services", {})
    if not isinstance(services, Mapping):
        return app
    expanded: dict[str, Any] = {}
    for name in list(BUILTIN_SERVICES) + [n for n in services if n not in BUILTIN_SERVICES]:
        own = services.get(name, {})
        if not isinstance(own, Mapping):
            expanded[name] = own  # let pydantic report the wrong type at this path
            continue
        expanded[name] = deep_merge(deep_merge(BUILTIN_SERVICES.get(name, {}), inherited), own)
    return {**app, "services": expanded}


class ConfigProblem:
    """One line of the settings report: a config path and what to do about it."""

    __slots__ = ("message", "path")

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self.path!r}, {self.message!r})"


class SettingsError(Exception):
    """Every problem of a stack's settings at once; __main__ turns it into a pulumi.RunError."""

    def __init__(self, stack: str, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"stack '{stack}' has {len(problems)} configuration problem(s); nothing was deployed:\n{lines}\n"
            f"Fix them in Pulumi.{stack}.yaml (or with `pulumi config set`); the keys and defaults are in "
            "the README's configuration reference and schema/stack-config.schema.json."
        )


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return sorted(field.alias or name for name, field in model.model_fields.items())


def _nested_model(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The model a field holds, and whether a mapping key (a service name) comes before it."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    args = get_args(annotation)
    if get_origin(annotation) is dict and len(args) == 2:
        inner = _nested_model(args[1])
        return (inner[0], True) if inner else None
    for arg in args:
        inner = _nested_model(arg)
        if inner:
            return inner
    return None


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class of the object at `loc`, to list the keys allowed there."""
    model: type[BaseModel] = Settings
    skip_key = False
    for part in loc:
        if skip_key:
            skip_key = False
            continue
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        nested = _nested_model(field.annotation) if field else None
        if nested is None:
            return None
        model, skip_key = nested
    return model


def _format_error(error: Mapping[str, Any]) -> ConfigProblem:
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and "[" in part))
    ctx = error.get("ctx") or {}
    if error["type"] == "cross_field":
        loc = loc + tuple(str(ctx["field"]).split("."))
    path = f"{PROJECT}:" + ".".join(str(p) for p in loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc[:-1])
        allowed = f"; allowed keys here: {', '.join(_allowed_keys(owner))}" if owner else ""
        message = f"unknown key{allowed}"
    elif kind == "missing":
        message = "required key is missing"
    else:
        found = error.get("input")
        # Our own messages quote the value already; pydantic's built-in ones do not.
        own = kind in ("cross_field", "format", "cidr", "host", "image", "secret_in_env", "unique")
        shown = "" if own or isinstance(found, Mapping | list) else f" (got {found!r})"
        message = f"{error['msg']}{shown}"
    return ConfigProblem(path, message)


def _problems_from(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        problems.append(_format_error({**error, "loc": prefix + tuple(error["loc"])}))
    return problems


def _once_where_written(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """A problem in app.defaults is inherited by every service; report it once, where it was written."""
    prefix = f"{PROJECT}:app.defaults."
    at_defaults = {(p.path[len(prefix) :], p.message) for p in problems if p.path.startswith(prefix)}
    service_path = re.compile(rf"^{re.escape(PROJECT)}:app\.services\.[^.]+\.(.+)$")

    def inherited(problem: ConfigProblem) -> bool:
        match = service_path.match(problem.path)
        return match is not None and (match.group(1), problem.message) in at_defaults

    return [p for p in problems if not inherited(p)]


def load_settings(
    stack: str,
    structured: Mapping[str, Any],
    unknown_keys: list[str],
    external_secrets: Mapping[str, bool | None],
    project_dir: str | None = None,
) -> Settings:
    """Validate a stack's configuration.

    `structured` maps top-level keys (without the project prefix) to their parsed values;
    `unknown_keys` are project keys that are neither structured nor external secrets;
    `external_secrets` maps each external secret key to None (unset), False (set in plaintext) or
    True (set with --secret); `project_dir`, when given, is where build contexts must exist.
    Raises SettingsError listing every problem.
    """
    problems: list[ConfigProblem] = [
        ConfigProblem(
            f"{PROJECT}:{key}",
            f"unknown key; allowed top-level keys: {', '.join(sorted(STRUCTURED_KEYS + tuple(EXTERNAL_SECRET_KEYS)))}",
        )
        for key in unknown_keys
    ]
    raw = {k: v for k, v in structured.items() if v is not None}
    if "environment" not in raw and stack in ENVIRONMENTS:
        raw["environment"] = stack
    environment = raw.get("environment")
    raw["app"] = _with_service_defaults(raw.get("app", {}))
    if isinstance(raw.get("data"), Mapping):
        # Like services: a stack states only what differs from the default endpoints.
        raw["data"] = deep_merge(DataSettings().model_dump(by_alias=True, exclude_none=True), raw["data"])
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(raw, context={"environment": environment, "project_dir": project_dir})
    except ValidationError as exc:
        problems.extend(_problems_from(exc))

    for key, state in external_secrets.items():
        path = f"{PROJECT}:{key}"
        if state is False:
            problems.append(
                ConfigProblem(
                    path,
                    f"is set in plaintext; remove it and run `pulumi config set --secret {key}` "
                    f"({EXTERNAL_SECRET_KEYS[key]})",
                )
            )
        elif state is None and environment in ("staging", "production") and key in REQUIRED_OUTSIDE_DEV:
            problems.append(
                ConfigProblem(
                    path,
                    f"required in {environment}: run `pulumi config set --secret {key}` ({EXTERNAL_SECRET_KEYS[key]})",
                )
            )
    if settings is not None and external_secrets.get("registryPassword") is None:
        for name, build in settings.builds().items():
            if build.registry_username:
                problems.append(
                    ConfigProblem(
                        f"{PROJECT}:app.services.{name}.build.registryUsername",
                        "needs the registry password: run `pulumi config set --secret registryPassword`",
                    )
                )
    if problems or settings is None:
        raise SettingsError(stack, _once_where_written(problems))
    return settings


def stack_config_schema() -> dict[str, Any]:
    """JSON Schema of a `Pulumi.<stack>.yaml`, so editors validate stack files as they are typed."""
    full = Settings.model_json_schema(by_alias=True)
    properties: dict[str, Any] = {f"{PROJECT}:{key}": full["properties"][key] for key in STRUCTURED_KEYS}
    for key, description in EXTERNAL_SECRET_KEYS.items():
        properties[f"{PROJECT}:{key}"] = {
            "description": f"{description}; set with `pulumi config set --secret {key}`",
            "type": "object",
            "properties": {"secure": {"type": "string"}},
            "required": ["secure"],
            "additionalProperties": False,
        }
    # Services may omit what the built-in definitions provide, so their fields are not required.
    defs = full.get("$defs", {})
    for name in ("ServiceSettings", "AppSettings", "ProbesSettings"):
        defs.get(name, {}).pop("required", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Pulumi stack configuration of {PROJECT}",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": properties,
                "patternProperties": {r"^(?!support-platform:).+:.+$": {}},
                "additionalProperties": False,
            },
            "encryptionsalt": {"type": "string"},
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
        },
        "additionalProperties": False,
        "$defs": defs,
    }
