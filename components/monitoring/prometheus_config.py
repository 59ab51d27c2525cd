"""Prometheus' configuration: scrape jobs from the metrics endpoints components declare, the rule
files, and the Alertmanager to send alerts to. Pure: `promtool check config` reads the output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.config import MonitoringSettings

RULES_DIRECTORY = "/etc/prometheus/rules"


@dataclass(frozen=True)
class MetricsEndpoint:
    """A metrics endpoint a component declares: which Service's port Prometheus scrapes, and where."""

    component: str
    namespace: str
    service: str
    port: str
    path: str = "/metrics"
    # The port's number, for the NetworkPolicy that lets Prometheus reach it.
    port_number: int | None = None


def scrape_job(endpoint: MetricsEndpoint) -> dict[str, Any]:
    """One job per endpoint: EndpointSlices of that Service in that namespace, that port only."""
    return {
        "job_name": endpoint.component,
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
        "scrape_configs": [scrape_job(e) for e in sorted(endpoints, key=lambda e: e.component)],
    }
