"""The bundled servers as hardened-builder inputs: pure functions from settings to the
ServiceSettings, volumes, RBAC and NetworkPolicy specs of Prometheus, Alertmanager and Grafana."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components.config import MonitoringSettings, NetworkSettings, ServiceSettings
from components.network import NAMESPACE_NAME_LABEL

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
GRAFANA_PORT = 3000
RUN_AS_USER = 10001


def _probes(ready: str | None, live: str | None) -> dict[str, Any]:
    return {
        "startup": {"path": live, "periodSeconds": 5, "failureThreshold": 60},
        "readiness": {"path": ready, "periodSeconds": 10, "failureThreshold": 3},
        "liveness": {"path": live, "periodSeconds": 20, "failureThreshold": 3, "timeoutSeconds": 5},
    }


def prometheus_service(settings: MonitoringSettings) -> ServiceSettings:
    return ServiceSettings.model_validate(
        {
            "component": "monitoring",
            "image": settings.images.prometheus,
            "args": [
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
                f"--storage.tsdb.retention.time={settings.retention.time}",
                f"--storage.tsdb.retention.size={settings.retention.size}",
                f"--web.listen-address=:{PROMETHEUS_PORT}",
            ],
            "ports": {"http": PROMETHEUS_PORT},
            "metricsPath": "/metrics",
            "probes": _probes("/-/ready", "/-/healthy"),
            "replicas": 1,
            "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
            "writablePaths": ["/tmp"],
            "runAsUser": RUN_AS_USER,
            # Long enough for the TSDB head to be written out on shutdown.
            "terminationGracePeriodSeconds": 300,
        }
    )


def alertmanager_service(settings: MonitoringSettings) -> ServiceSettings:
    return ServiceSettings.model_validate(
        {
            "component": "monitoring",
            "image": settings.images.alertmanager,
            "args": [
                "--config.file=/etc/alertmanager/alertmanager.yml",
                "--storage.path=/alertmanager",
                f"--web.listen-address=:{ALERTMANAGER_PORT}",
                # One replica: no gossip cluster to join (and no port to open for it).
                "--cluster.listen-address=",
            ],
            "ports": {"http": ALERTMANAGER_PORT},
            "metricsPath": "/metrics",
            "probes": _probes("/-/ready", "/-/healthy"),
            "replicas": 1,
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "250m", "memory": "256Mi"}},
            "writablePaths": ["/tmp"],
            "runAsUser": RUN_AS_USER,
        }
    )


GRAFANA_ENV = {
    "GF_AUTH_ANONYMOUS_ENABLED": "false",
    "GF_USERS_ALLOW_SIGN_UP": "false",
    "GF_USERS_ALLOW_ORG_CREATE": "false",
    "GF_AUTH_BASIC_ENABLED": "true",
    "GF_SECURITY_ADMIN_USER": "admin",
    "GF_SECURITY_DISABLE_GRAVATAR": "true",
    "GF_ANALYTICS_REPORTING_ENABLED": "false",
    "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
    "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
    "GF_PATHS_PROVISIONING": "/etc/grafana/provisioning",
    "GF_PATHS_DATA": "/var/lib/grafana",
    "GF_LOG_MODE": "console",
}
GRAFANA_ADMIN_PASSWORD_ENV = "GF_SECURITY_ADMIN_PASSWORD"  # noqa: S105 (a variable name)


def grafana_service(settings: MonitoringSettings) -> ServiceSettings:
    return ServiceSettings.model_validate(
        {
            "component": "monitoring",
            "image": settings.images.grafana,
            "ports": {"http": GRAFANA_PORT},
            "metricsPath": "/metrics",
            "env": GRAFANA_ENV,
            # readiness asks Grafana (and its database); liveness only that it accepts connections.
            "probes": {
                "startup": {"path": "/api/health", "periodSeconds": 5, "failureThreshold": 60},
                "readiness": {"path": "/api/health", "periodSeconds": 10},
                "liveness": {"periodSeconds": 20},
            },
            "replicas": 1,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
            "writablePaths": ["/tmp", "/var/lib/grafana"],
            "runAsUser": RUN_AS_USER,
        }
    )


def grafana_datasources(prometheus_url: str) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": "prometheus",
                "type": "prometheus",
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": True,
                "editable": False,
            }
        ],
    }


def discovery_role_rules() -> list[dict[str, Any]]:
    """What Prometheus' Kubernetes service discovery reads: nothing more, nothing cluster-wide."""
    return [
        {"api_groups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
        {"api_groups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
    ]


def _pods(selector: Mapping[str, str]) -> dict[str, Any]:
    return {"pod_selector": {"match_labels": dict(selector)}}


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def prometheus_policy_spec(
    selectors: Mapping[str, Mapping[str, str]],
    scrape_targets: Sequence[tuple[str, int]],
    api_server_cidr: str,
) -> dict[str, Any]:
    """Prometheus: scraped by itself, queried by Grafana; reaches its scrape targets (namespace, port),
    Alertmanager, Grafana's metrics and the API server for discovery."""
    egress: list[dict[str, Any]] = [
        {
            "to": [{"namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: ns}}}],
            "ports": _tcp(*sorted({p for n, p in scrape_targets if n == ns})),
        }
        for ns in sorted({n for n, _ in scrape_targets})
    ]
    egress += [
        {"to": [_pods(selectors["alertmanager"])], "ports": _tcp(ALERTMANAGER_PORT)},
        {"to": [{"ip_block": {"cidr": api_server_cidr}}], "ports": _tcp(443, 6443)},
    ]
    return {
        "pod_selector": {"match_labels": dict(selectors["prometheus"])},
        "policy_types": ["Ingress", "Egress"],
        "ingress": [
            {"from_": [_pods(selectors["prometheus"]), _pods(selectors["grafana"])], "ports": _tcp(PROMETHEUS_PORT)}
        ],
        "egress": egress,
    }


def alertmanager_policy_spec(selectors: Mapping[str, Mapping[str, str]], network: NetworkSettings) -> dict[str, Any]:
    """Alertmanager: receives from Prometheus (alerts, scrapes) and Grafana; posts webhooks over HTTPS to
    public addresses only."""
    block: dict[str, Any] = {"cidr": network.llm_egress.cidr}
    if network.llm_egress.except_cidrs:
        block["except_"] = list(network.llm_egress.except_cidrs)
    return {
        "pod_selector": {"match_labels": dict(selectors["alertmanager"])},
        "policy_types": ["Ingress", "Egress"],
        "ingress": [
            {
                "from_": [_pods(selectors["prometheus"]), _pods(selectors["grafana"])],
                "ports": _tcp(ALERTMANAGER_PORT),
            }
        ],
        "egress": [{"to": [{"ip_block": block}], "ports": _tcp(443)}],
    }


def grafana_policy_spec(selectors: Mapping[str, Mapping[str, str]], allow_from: Sequence[str]) -> dict[str, Any]:
    """Grafana: reached by Prometheus (metrics) and the declared namespaces only; queries Prometheus
    and Alertmanager."""
    ingress: list[dict[str, Any]] = [{"from_": [_pods(selectors["prometheus"])], "ports": _tcp(GRAFANA_PORT)}]
    if allow_from:
        ingress.append(
            {
                "from_": [
                    {"namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: ns}}} for ns in sorted(allow_from)
                ],
                "ports": _tcp(GRAFANA_PORT),
            }
        )
    return {
        "pod_selector": {"match_labels": dict(selectors["grafana"])},
        "policy_types": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": [
            {"to": [_pods(selectors["prometheus"])], "ports": _tcp(PROMETHEUS_PORT)},
            {"to": [_pods(selectors["alertmanager"])], "ports": _tcp(ALERTMANAGER_PORT)},
        ],
    }
