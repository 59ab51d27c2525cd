"""Settings of the network guardrails: DNS, egress to the LLM provider, the monitoring namespace."""

from __future__ import annotations

from components.config.base import Cidr, DnsLabel, Port, _Strict


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
