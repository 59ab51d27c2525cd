"""The platform's built-in services (api, web, agent, mcp) and how a stack's own values merge over them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.config.base import deep_merge

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
        # Rendered as DB_POOL_SIZE and DB_MAX_OVERFLOW, the environment the api reads.
        "databasePool": {"size": 10, "maxOverflow": 20, "processes": 1},
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
        # The program's nginx.conf: answers the probes' /health, falls back to the app's index.
        "nginx": {},
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
        # Counted only: the image decides its pool. node-postgres' default Pool max is 10 (002's MCP
        # server is Node.js); set what the server really keeps.
        "databasePool": {"size": 10, "maxOverflow": 0, "processes": 1, "renderEnv": False},
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
