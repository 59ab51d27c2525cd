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
# The kubelet exposes far more than the one alert that reads it needs: keep only its volume stats.
KUBELET_KEEP = "kubelet_volume_stats_.+"


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


def kubelet_scrape_job() -> dict[str, Any]:
    """Every node's kubelet through the API server proxy (Prometheus' Kubernetes example): Prometheus
    needs no route to the nodes, only to the API server, with its service account's token and CA."""
    return {
        "job_name": KUBELET_JOB,
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
                "replacement": "/api/v1/nodes/${1}/proxy/metrics",
            },
            {"source_labels": ["__meta_kubernetes_node_name"], "target_label": "node"},
            {"target_label": "service", "replacement": KUBELET_JOB},
        ],
        "metric_relabel_configs": [{"source_labels": ["__name__"], "regex": KUBELET_KEEP, "action": "keep"}],
    }


def prometheus_config(
    settings: MonitoringSettings,
    endpoints: Sequence[MetricsEndpoint],
    alertmanager: MetricsEndpoint,
    environment: str,
) -> dict[str, Any]:
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
            *([kubelet_scrape_job()] if settings.kubelet_volume_stats else []),
        ],
    }
