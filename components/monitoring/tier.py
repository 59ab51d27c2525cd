"""Monitoring, per `monitoring.mode`: the bundled servers in their own namespace, the Prometheus
Operator's custom resources, or nothing. It scrapes the endpoints the other tiers declare."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pulumi

from components.config import MonitoringSettings
from components.contracts import MetricsEndpoint
from components.kit.context import TierContext
from components.kit.namespace import PlatformNamespace, PlatformNamespaceArgs
from components.labels import selector_labels
from components.monitoring.bundled import BundledMonitoring, BundledMonitoringArgs
from components.monitoring.operator import OperatorMonitoring, OperatorMonitoringArgs


def metrics_scraper(settings: MonitoringSettings, instance: str) -> dict[str, str] | None:
    """The pods allowed to scrape metrics ports: the bundled Prometheus, the operator's, or none."""
    if settings.mode == "bundled":
        return selector_labels("prometheus", instance)
    if settings.mode == "operator":
        return dict(settings.operator.prometheus_pod_labels)
    return None


@dataclass(frozen=True)
class MonitoringArgs:
    settings: MonitoringSettings
    # ctx.protect: the bundled servers' data; ctx.after: namespaces created elsewhere that this
    # component puts objects in (discovery RBAC, operator resources).
    context: TierContext
    environment: str
    endpoints: Sequence[MetricsEndpoint]
    platform_namespaces: Sequence[str]
    grafana_admin_password: pulumi.Output[str]
    receiver_secrets: Mapping[str, pulumi.Output[str] | None]
    # Operator mode puts its custom resources and dashboards here (the monitoring namespace is the
    # operator's, not this program's).
    app_namespace: str = "support-app"


class Monitoring(pulumi.ComponentResource):
    prometheus_url: str | None

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:monitoring:Monitoring", name, None, opts)
        ctx = args.context
        monitoring_namespace = ctx.network.monitoring_namespace
        self.prometheus_url = None
        if args.settings.mode == "bundled":
            ns = PlatformNamespace(
                f"{name}-namespace",
                # Not protected: what must outlive an operation is protected inside it.
                PlatformNamespaceArgs(
                    name=monitoring_namespace, component="monitoring", context=replace(ctx, protect=False)
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            bundled = BundledMonitoring(
                f"{name}",
                BundledMonitoringArgs(
                    settings=args.settings,
                    context=ctx.waiting_for(ns.namespace),
                    namespace=monitoring_namespace,
                    environment=args.environment,
                    endpoints=args.endpoints,
                    platform_namespaces=[*args.platform_namespaces, monitoring_namespace],
                    grafana_admin_password=args.grafana_admin_password,
                    receiver_secrets=args.receiver_secrets,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.prometheus_url = bundled.prometheus_url
        elif args.settings.mode == "operator":
            OperatorMonitoring(
                name,
                OperatorMonitoringArgs(
                    settings=args.settings,
                    context=ctx,
                    namespace=args.app_namespace,
                    endpoints=args.endpoints,
                    platform_namespaces=[*args.platform_namespaces, monitoring_namespace],
                    receiver_secrets=args.receiver_secrets,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"mode": args.settings.mode})
