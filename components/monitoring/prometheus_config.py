"""Prometheus' configuration: scrape jobs from the metrics endpoints components declare, the rule
files, and the Alertmanager to send alerts to. Pure: `promtool check config` reads the output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.config import MonitoringSettings
from components.contracts import MetricsEndpoint

RULES_DIRECTORY = "/etc/prometheus/rules"
SERVICE_ACCOUNT_DIRECTORY = "/var/run/secrets/kubernetes.io/serviceaccount"
KUBELET_JOB = "kubelet"
CADVISOR_JOB = "cadvisor"
NODE_EXPORTER_JOB = "node-exporter"
# The kubelet exposes far more than the one alert that reads it needs: keep only its volume stats.
KUBELET_KEEP = "kubelet_volume_stats_.+"
# cAdvisor reports every container of the node: keep what the container alerts read.
CADVISOR_KEEP = (
    "container_cpu_usage_seconds_total|container_memory_working_set_bytes|container_spec_memory_limit_bytes"
    "|container_spec_cpu_quota|container_spec_cpu_period"
)
# node_exporter: what the node alerts read.
NODE_EXPORTER_KEEP = (
    "node_memory_MemTotal_bytes|node_memory_MemAvailable_bytes|node_cpu_seconds_total|node_filesystem_.+"
)


def scrape_job(endpoint: MetricsEndpoint) -> dict[str, Any]:
    """One job per endpoint: EndpointSlices of that Service in that namespace, that port only."""
    job: dict[str, Any] = {"job_name": endpoint.component}
    if endpoint.honor_labels:
        job["honor_labels"] = True
    return job | {
        "metrics_path": endpoint.path,
        "kubernetes_sd_configs": [{"role": "endpointslice", "namespaces": {"names": [endpoint.namespace]}}],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_service_name", "__meta_kubernetes_endpointslice_port_name"],
                "regex": f"{endpoint.service};{endpoint.port}",
                "action": "keep",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }


def node_proxy_job(job: str, path: str, keep: str, node_port: int | None = None) -> dict[str, Any]:
    """Every node through the API server proxy (Prometheus' Kubernetes example): Prometheus needs no
    route to the nodes, only to the API server, with its service account's token and CA. `node_port`:
    a port on the node (node_exporter) instead of the kubelet's own."""
    node = "${1}" if node_port is None else f"${{1}}:{node_port}"
    return {
        "job_name": job,
        "scheme": "https",
        "tls_config": {"ca_file": f"{SERVICE_ACCOUNT_DIRECTORY}/ca.crt"},
        "authorization": {"credentials_file": f"{SERVICE_ACCOUNT_DIRECTORY}/token"},
        "kubernetes_sd_configs": [{"role": "node"}],
        "relabel_configs": [
            {"target_label": "__address__", "replacement": "kubernetes.default.svc:443"},
            {
                "source_labels": ["__meta_kubernetes_node_name"],
                "regex": "(.+)",
                "target_label": "__metrics_path__",
                "replacement": f"/api/v1/nodes/{node}/proxy{path}",
            },
            {"source_labels": ["__meta_kubernetes_node_name"], "target_label": "node"},
            {"target_label": "service", "replacement": job},
        ],
        "metric_relabel_configs": [{"source_labels": ["__name__"], "regex": keep, "action": "keep"}],
    }


def kubelet_scrape_job() -> dict[str, Any]:
    return node_proxy_job(KUBELET_JOB, "/metrics", KUBELET_KEEP)


def cadvisor_scrape_job(namespaces: Sequence[str]) -> dict[str, Any]:
    """The kubelets' cAdvisor, only the platform's containers (its series carry their own namespace)."""
    job = node_proxy_job(CADVISOR_JOB, "/metrics/cadvisor", CADVISOR_KEEP)
    job["metric_relabel_configs"].append(
        {"source_labels": ["namespace"], "regex": "|".join(sorted(set(namespaces))), "action": "keep"}
    )
    return job


def node_exporter_scrape_job(port: int) -> dict[str, Any]:
    return node_proxy_job(NODE_EXPORTER_JOB, "/metrics", NODE_EXPORTER_KEEP, node_port=port)


def prometheus_config(
    settings: MonitoringSettings,
    endpoints: Sequence[MetricsEndpoint],
    alertmanager: MetricsEndpoint,
    environment: str,
    namespaces: Sequence[str] = (),
) -> dict[str, Any]:
    """`namespaces`: the platform's, whose containers the cAdvisor job keeps."""
    node_jobs = [
        *([kubelet_scrape_job()] if settings.kubelet_volume_stats else []),
        *([cadvisor_scrape_job(namespaces)] if settings.cadvisor else []),
        *([node_exporter_scrape_job(settings.node_exporter.port)] if settings.node_exporter.enabled else []),
    ]
    return {
        "global": {
            "scrape_interval": settings.scrape_interval,
            "evaluation_interval": settings.scrape_interval,
            "external_labels": {"environment": environment},
        },
        "rule_files": [f"{RULES_DIRECTORY}/*.yaml"],
        "alerting": {
            "alertmanagers": [
                {
                    "kubernetes_sd_configs": [
                        {"role": "endpointslice", "namespaces": {"names": [alertmanager.namespace]}}
                    ],
                    "relabel_configs": [
                        {
                            "source_labels": [
                                "__meta_kubernetes_service_name",
                                "__meta_kubernetes_endpointslice_port_name",
                            ],
                            "regex": f"{alertmanager.service};{alertmanager.port}",
                            "action": "keep",
                        }
                    ],
                }
            ]
        },
        "scrape_configs": [
            *(scrape_job(e) for e in sorted(endpoints, key=lambda e: e.component)),
            *node_jobs,
        ],
    }
