"""The bundled servers as hardened-builder inputs: pure functions from settings to the workload
specs and RBAC rules of Prometheus, Alertmanager, Grafana and kube-state-metrics. Their
NetworkPolicies come from components/kit/network.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components.config import MonitoringSettings
from components.kit import workload
from components.labels import image_version, selector_labels, standard_labels

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
PORTS = {
    "prometheus": PROMETHEUS_PORT,
    "alertmanager": ALERTMANAGER_PORT,
    "grafana": GRAFANA_PORT,
    "kube-state-metrics": KUBE_STATE_METRICS_PORT,
}
RUN_AS_USER = 10001
PRE_STOP_SECONDS = 5


def _probe(path: str | None, period: int, failures: int = 3, timeout: int = 2, port: str = "http") -> dict[str, Any]:
    check = {"tcp_socket": {"port": port}} if path is None else {"http_get": {"path": path, "port": port}}
    return workload.probe(check, period, failures, timeout, initial_delay=0)


def _probes(ready: str | None, live: str | None) -> dict[str, dict[str, Any]]:
    return {
        "startup": _probe(live, 5, failures=60),
        "readiness": _probe(ready, 10),
        "liveness": _probe(live, 20, timeout=5),
    }


def server_identity(server: str, namespace: str, instance: str, image: str) -> workload.WorkloadIdentity:
    return workload.WorkloadIdentity(
        name=server,
        namespace=namespace,
        labels=standard_labels(server, instance, "monitoring", image_version(image)),
        selector=selector_labels(server, instance),
        config_map_name=f"{server}-env",
        secret_name=None,
        service_account_name=server,
    )


def _server(
    identity: workload.WorkloadIdentity,
    image: str,
    ports: Mapping[str, int],
    probes: Mapping[str, Mapping[str, Any]],
    resources: Mapping[str, Any],
    *,
    args: Sequence[str] | None = None,
    writable_paths: Sequence[str] = ("/tmp",),
    # Default: time for the preStop sleep and 30 s to finish in-flight requests.
    grace_seconds: int = PRE_STOP_SECONDS + 30,
    env: Sequence[Mapping[str, Any]] = (),
    api_token: bool = False,
) -> workload.WorkloadSpec:
    return workload.WorkloadSpec(
        identity=identity,
        image=image,
        ports=ports,
        probes=probes,
        resources=resources,
        run_as_user=RUN_AS_USER,
        termination_grace_period_seconds=grace_seconds,
        writable_paths=writable_paths,
        args=args,
        env=env,
        lifecycle=workload.pre_stop_sleep(PRE_STOP_SECONDS),
        api_token=api_token,
    )


def prometheus_workload(settings: MonitoringSettings, identity: workload.WorkloadIdentity) -> workload.WorkloadSpec:
    return _server(
        identity,
        settings.images.prometheus,
        {"http": PROMETHEUS_PORT},
        _probes("/-/ready", "/-/healthy"),
        {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi", "cpu": "1"}},
        args=[
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            f"--storage.tsdb.retention.time={settings.retention.time}",
            f"--storage.tsdb.retention.size={settings.retention.size}",
            f"--web.listen-address=:{PROMETHEUS_PORT}",
        ],
        # Long enough for the TSDB head to be written out on shutdown.
        grace_seconds=300,
        # Service discovery reads the API.
        api_token=True,
    )


def alertmanager_workload(settings: MonitoringSettings, identity: workload.WorkloadIdentity) -> workload.WorkloadSpec:
    return _server(
        identity,
        settings.images.alertmanager,
        {"http": ALERTMANAGER_PORT},
        _probes("/-/ready", "/-/healthy"),
        {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi", "cpu": "250m"}},
        args=[
            "--config.file=/etc/alertmanager/alertmanager.yml",
            "--storage.path=/alertmanager",
            f"--web.listen-address=:{ALERTMANAGER_PORT}",
            # One replica: no gossip cluster to join (and no port to open for it).
            "--cluster.listen-address=",
        ],
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
GRAFANA_ADMIN_SECRET = "grafana-admin"  # noqa: S105 (a Secret's name)
GRAFANA_ADMIN_DIRECTORY = "/etc/grafana/admin"


def grafana_workload(settings: MonitoringSettings, identity: workload.WorkloadIdentity) -> workload.WorkloadSpec:
    return _server(
        identity,
        settings.images.grafana,
        {"http": GRAFANA_PORT},
        # readiness asks Grafana (and its database); liveness only that it accepts connections.
        {
            "startup": _probe("/api/health", 5, failures=60),
            "readiness": _probe("/api/health", 10),
            "liveness": _probe(None, 20),
        },
        {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi", "cpu": "500m"}},
        writable_paths=["/tmp", "/var/lib/grafana"],
        env=[{"name": GRAFANA_ADMIN_PASSWORD_ENV, "value": f"{GRAFANA_ADMIN_DIRECTORY}/password"}],
    )


def kube_state_metrics_workload(
    settings: MonitoringSettings, identity: workload.WorkloadIdentity, namespaces: Sequence[str]
) -> workload.WorkloadSpec:
    resources = sorted(r for group in KUBE_STATE_METRICS_RESOURCES.values() for r in group)
    return _server(
        identity,
        settings.images.kube_state_metrics,
        # "http" is its metrics port (the builder's convention); telemetry: its own health.
        {"http": KUBE_STATE_METRICS_PORT, "telemetry": KUBE_STATE_METRICS_TELEMETRY_PORT},
        # Its own example: alive on the metrics port, ready (informers synced) on telemetry.
        {
            "startup": _probe("/livez", 5, failures=60),
            "readiness": _probe("/readyz", 10, port="telemetry"),
            "liveness": _probe("/livez", 20, timeout=5),
        },
        {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi", "cpu": "200m"}},
        args=[
            f"--port={KUBE_STATE_METRICS_PORT}",
            f"--telemetry-port={KUBE_STATE_METRICS_TELEMETRY_PORT}",
            # Namespaced list/watch only: with --namespaces it needs Roles, not a ClusterRole.
            f"--namespaces={','.join(sorted(set(namespaces)))}",
            f"--resources={','.join(resources)}",
        ],
        # It lists and watches the API.
        api_token=True,
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
