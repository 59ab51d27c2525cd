"""Settings of the app tier: the services, their images, builds, probes, resources and scaling."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from components.config.base import (
    _DIGEST,
    _IMAGE,
    _SECRET_NAME,
    _URL_WITH_CREDENTIALS,
    CREDENTIAL_CONNECTION,
    DATA_SERVICES,
    EXTERNAL_CONNECTIONS,
    AbsolutePath,
    CpuQuantity,
    Credential,
    DnsLabel,
    EnvName,
    HttpPath,
    MemoryQuantity,
    Port,
    PortName,
    _cross_field,
    _Strict,
    pins_required,
)
from components.config.build import BuildSettings
from components.config.pool import DatabasePoolSettings
from components.config.quantity import cpu_millicores, memory_bytes
from components.config.web import NginxSettings


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
    database_pool: DatabasePoolSettings | None = None
    """The PostgreSQL pool of each process (required with connectsTo postgres): rendered as env, counted in
    the connection budget against max_connections."""
    nginx: NginxSettings | None = None
    """The service is nginx serving the single-page app: the program ships its nginx.conf (built-in web)."""
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
        if enabled and pins_required(info) and not _DIGEST.search(value):
            raise PydanticCustomError(
                "image",
                "production requires an image pinned by digest, got '{value}'; run `make pin-images "
                "STACK=production` (writes the digest the registry serves for the tag) or deploy through the "
                "release workflow, which pins the tag it releases",
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
        pool_env = self.database_pool.env() if self.database_pool is not None else {}
        doubled = sorted(set(self.env) & set(pool_env))
        if doubled:
            raise _cross_field(
                "env",
                "{names} come from databasePool; set them there (or databasePool.renderEnv: false)",
                names=", ".join(doubled),
            )
        if self.database_pool is not None and "postgres" not in self.connects_to:
            raise _cross_field("databasePool", "the service does not connect to postgres; remove databasePool")
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
