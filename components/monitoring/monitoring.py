"""Monitoring, per `monitoring.mode`: the bundled servers in their own namespace, the Prometheus
Operator's custom resources, or nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from components.config import MonitoringSettings, NetworkSettings, ServiceSettings
from components.monitoring.bundled import BundledMonitoring, BundledMonitoringArgs
from components.monitoring.operator import OperatorMonitoring, OperatorMonitoringArgs
from components.monitoring.prometheus_config import MetricsEndpoint
from components.namespace import PlatformNamespace, PlatformNamespaceArgs


def service_endpoints(services: Mapping[str, ServiceSettings], namespace: str) -> list[MetricsEndpoint]:
    """The metrics endpoints the app's services declare (`metricsPath`)."""
    return [
        MetricsEndpoint(
            component=name,
            namespace=namespace,
            service=name,
            port=svc.metrics_port_name,
            path=svc.metrics_path,
            port_number=svc.ports[svc.metrics_port_name],
        )
        for name, svc in sorted(services.items())
        if svc.metrics_path is not None
    ]


@dataclass(frozen=True)
class MonitoringArgs:
    settings: MonitoringSettings
    network: NetworkSettings
    instance: str
    version: str
    environment: str
    endpoints: Sequence[MetricsEndpoint]
    platform_namespaces: Sequence[str]
    grafana_admin_password: pulumi.Output[str]
    receiver_secrets: Mapping[str, pulumi.Output[str] | None]
    protect: bool = False
    # Operator mode puts its custom resources and dashboards here (the monitoring namespace is the
    # operator's, not this program's).
    app_namespace: str = "support-app"
    # Namespaces created elsewhere that this component puts objects in (discovery RBAC).
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class Monitoring(pulumi.ComponentResource):
    prometheus_url: str | None

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.prometheus_url = None
        if args.settings.mode == "bundled":
            namespace = args.network.monitoring_namespace
            ns = PlatformNamespace(
                f"{name}-namespace",
                PlatformNamespaceArgs(
                    name=namespace,
                    instance=args.instance,
                    component="monitoring",
                    version=args.version,
                    network=args.network,
                ),
                opts=child,
            )
            bundled = BundledMonitoring(
                f"{name}",
                BundledMonitoringArgs(
                    settings=args.settings,
                    network=args.network,
                    namespace=namespace,
                    instance=args.instance,
                    version=args.version,
                    environment=args.environment,
                    endpoints=args.endpoints,
                    platform_namespaces=[*args.platform_namespaces, namespace],
                    grafana_admin_password=args.grafana_admin_password,
                    receiver_secrets=args.receiver_secrets,
                    protect=args.protect,
                    depends_on=[*args.depends_on, ns.namespace],
                ),
                opts=child,
            )
            self.prometheus_url = bundled.prometheus_url
        elif args.settings.mode == "operator":
            OperatorMonitoring(
                name,
                OperatorMonitoringArgs(
                    settings=args.settings,
                    namespace=args.app_namespace,
                    instance=args.instance,
                    version=args.version,
                    endpoints=args.endpoints,
                    platform_namespaces=[*args.platform_namespaces, args.network.monitoring_namespace],
                    receiver_secrets=args.receiver_secrets,
                    depends_on=list(args.depends_on),
                ),
                opts=child,
            )
        self.register_outputs({"mode": args.settings.mode})
