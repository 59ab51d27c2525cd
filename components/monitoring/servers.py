"""The bundled servers as hardened-builder inputs: pure functions from settings to the
ServiceSettings, volumes, RBAC and NetworkPolicy specs of Prometheus, Alertmanager, Grafana and
kube-state-metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components.config import MonitoringSettings, NetworkSettings, ServiceSettings
from components.network import NAMESPACE_NAME_LABEL

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
GRAFANA_PORT = 3000
KUBE_STATE_METRICS_PORT = 8080
KUBE_STATE_METRICS_TELEMETRY_PORT = 8081
# What the platform's alerts read from kube-state-metrics (pods: restarts; cronjobs: last success)
# and what its dashboards may grow into; nothing cluster-scoped (nodes, namespaces, volumes).
KUBE_STATE_METRICS_RESOURCES: dict[str, tuple[str, ...]] = {
    "": ("pods", "persistentvolumeclaims"),
    "apps": ("deployments", "statefulsets"),
    "batch": ("cronjobs", "jobs"),
}
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
# Grafana reads any setting from a file through the __FILE suffix: the password stays out of the environment.
GRAFANA_ADMIN_PASSWORD_ENV = "GF_SECURITY_ADMIN_PASSWORD__FILE"  # noqa: S105 (a variable name)
GRAFANA_ADMIN_DIRECTORY = "/etc/grafana/admin"


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


def kube_state_metrics_service(settings: MonitoringSettings, namespaces: Sequence[str]) -> ServiceSettings:
    resources = sorted(r for group in KUBE_STATE_METRICS_RESOURCES.values() for r in group)
    return ServiceSettings.model_validate(
        {
            "component": "monitoring",
            "image": settings.images.kube_state_metrics,
            "args": [
                f"--port={KUBE_STATE_METRICS_PORT}",
                f"--telemetry-port={KUBE_STATE_METRICS_TELEMETRY_PORT}",
                # Namespaced list/watch only: with --namespaces it needs Roles, not a ClusterRole.
                f"--namespaces={','.join(sorted(set(namespaces)))}",
                f"--resources={','.join(resources)}",
            ],
            # "http" is its metrics port (the builder's convention); telemetry: its own health.
            "ports": {"http": KUBE_STATE_METRICS_PORT, "telemetry": KUBE_STATE_METRICS_TELEMETRY_PORT},
            "metricsPath": "/metrics",
            # Its own example: alive on the metrics port, ready (informers synced) on telemetry.
            "probes": {
                "startup": {"path": "/livez", "periodSeconds": 5, "failureThreshold": 60},
                "readiness": {"path": "/readyz", "port": "telemetry", "periodSeconds": 10},
                "liveness": {"path": "/livez", "periodSeconds": 20, "timeoutSeconds": 5},
            },
            "replicas": 1,
            "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}},
            "writablePaths": ["/tmp"],
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


def kube_state_metrics_role_rules() -> list[dict[str, Any]]:
    """list/watch of exactly the resources kube-state-metrics is started with, in one namespace."""
    return [
        {"api_groups": [group], "resources": list(resources), "verbs": ["list", "watch"]}
        for group, resources in KUBE_STATE_METRICS_RESOURCES.items()
    ]


def kubelet_cluster_role_rules() -> list[dict[str, Any]]:
    """Opt-in (monitoring.kubeletVolumeStats): the kubelets' metrics through the API server proxy.
    Nodes are cluster-scoped, so this is the one ClusterRole the program can create."""
    return [
        {"api_groups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]},
        {"api_groups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]},
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


def kube_state_metrics_policy_spec(selectors: Mapping[str, Mapping[str, str]], api_server_cidr: str) -> dict[str, Any]:
    """kube-state-metrics: scraped by Prometheus only; reaches nothing but the API server."""
    return {
        "pod_selector": {"match_labels": dict(selectors["kube-state-metrics"])},
        "policy_types": ["Ingress", "Egress"],
        "ingress": [{"from_": [_pods(selectors["prometheus"])], "ports": _tcp(KUBE_STATE_METRICS_PORT)}],
        "egress": [{"to": [{"ip_block": {"cidr": api_server_cidr}}], "ports": _tcp(443, 6443)}],
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
