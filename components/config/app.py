"""Settings of the app tier: the services, their images, builds, probes, resources and scaling."""

from __future__ import annotations

import os
import re
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
    _check,
    _cross_field,
    _Strict,
    cpu_millicores,
    deep_merge,
    memory_bytes,
)


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
