"""Operator mode: the cluster runs the Prometheus Operator (and Grafana with its dashboard sidecar),
so the program emits what they select instead of servers: a ServiceMonitor per declared metrics
endpoint, one PrometheusRule with the generated rule files, an AlertmanagerConfig with the same
routes and inhibition as the bundled Alertmanager, and the dashboards as ConfigMaps. Each carries
the selector labels from settings. Pure builders plus a component that registers them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import MonitoringSettings
from components.contracts import MetricsEndpoint
from components.kit.context import TierContext
from components.labels import selector_labels, standard_labels
from components.monitoring.alertmanager_config import RECEIVERS, receiver_url
from components.monitoring.dashboards import dashboards
from components.monitoring.rules import rule_files

GROUP = "monitoring.coreos.com"
WEBHOOK_SECRET = "alertmanager-webhooks"  # noqa: S105 (a Secret object name)


def service_monitor_spec(endpoint: MetricsEndpoint, instance: str, interval: str) -> dict[str, Any]:
    return {
        "selector": {"matchLabels": selector_labels(endpoint.service, instance)},
        "namespaceSelector": {"matchNames": [endpoint.namespace]},
        "endpoints": [{"port": endpoint.port, "path": endpoint.path, "interval": interval, "scheme": "http"}],
    }


def prometheus_rule_spec(settings: MonitoringSettings, namespaces: Sequence[str]) -> dict[str, Any]:
    groups = [g for f in rule_files(settings, namespaces).values() for g in f["groups"]]
    return {"groups": groups}


def _matcher(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value, "matchType": "="}


def alertmanager_config_spec(settings: MonitoringSettings, webhook_keys: Mapping[str, str | None]) -> dict[str, Any]:
    """`webhook_keys`: receiver -> key in the webhook Secret, None where its URL is unset (dev)."""
    routing = settings.routing
    receivers = []
    for name in RECEIVERS:
        receiver: dict[str, Any] = {"name": name}
        key = webhook_keys.get(name)
        if key is not None:
            receiver["webhookConfigs"] = [
                {"urlSecret": {"name": WEBHOOK_SECRET, "key": key}, "sendResolved": name != "watchdog"}
            ]
        receivers.append(receiver)
    return {
        "route": {
            "receiver": "warning",
            "groupBy": list(routing.group_by),
            "groupWait": routing.group_wait,
            "groupInterval": routing.group_interval,
            "repeatInterval": routing.repeat_interval,
            "routes": [
                {
                    "receiver": "watchdog",
                    "matchers": [_matcher("alertname", "Watchdog")],
                    "groupWait": "0s",
                    "groupInterval": routing.watchdog_repeat_interval,
                    "repeatInterval": routing.watchdog_repeat_interval,
                },
                {"receiver": "critical", "matchers": [_matcher("severity", "critical")]},
                {"receiver": "warning", "matchers": [_matcher("severity", "warning")]},
            ],
        },
        "inhibitRules": [
            {
                "sourceMatch": [_matcher("severity", "critical")],
                "targetMatch": [_matcher("severity", "warning")],
                "equal": ["alertname", "namespace"],
            }
        ],
        "receivers": receivers,
    }


@dataclass(frozen=True)
class OperatorMonitoringArgs:
    settings: MonitoringSettings
    # Instance and version; `after`: the namespaces its objects go into.
    context: TierContext
    # Where the custom resources and dashboards go: a namespace the program owns.
    namespace: str
    endpoints: Sequence[MetricsEndpoint]
    platform_namespaces: Sequence[str]
    receiver_secrets: Mapping[str, pulumi.Output[str] | None]


class OperatorMonitoring(pulumi.ComponentResource):
    def __init__(self, name: str, args: OperatorMonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:monitoring:Operator", name, None, opts)
        s, ctx = args.settings, args.context
        child = ctx.options(self)
        labels = {
            **standard_labels("monitoring", ctx.instance, "monitoring", ctx.version),
            **s.operator.selector_labels,
        }

        def meta(object_name: str, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
            return {"name": object_name, "namespace": args.namespace, "labels": {**labels, **(extra or {})}}

        for endpoint in args.endpoints:
            k8s.apiextensions.CustomResource(
                f"{name}-servicemonitor-{endpoint.component}",
                api_version=f"{GROUP}/v1",
                kind="ServiceMonitor",
                metadata=meta(endpoint.component),
                spec=service_monitor_spec(endpoint, ctx.instance, s.scrape_interval),
                opts=child,
            )
        k8s.apiextensions.CustomResource(
            f"{name}-prometheusrule",
            api_version=f"{GROUP}/v1",
            kind="PrometheusRule",
            metadata=meta("support-platform"),
            spec=prometheus_rule_spec(s, args.platform_namespaces),
            opts=child,
        )

        # Webhook URLs are secrets: a Secret holds them, the AlertmanagerConfig references its keys.
        urls: dict[str, pulumi.Output[str]] = {}
        keys: dict[str, str | None] = {}
        for receiver in RECEIVERS:
            settings = getattr(s.receivers, receiver)
            found = receiver_url(settings, args.receiver_secrets)
            value = None if found is None else pulumi.Output.from_input(found)
            keys[receiver] = receiver if value is not None else None
            if value is not None:
                urls[receiver] = pulumi.Output.secret(value)
        depends: list[pulumi.Resource] = []
        if urls:
            depends.append(
                k8s.core.v1.Secret(
                    f"{name}-webhooks",
                    metadata=meta(WEBHOOK_SECRET),
                    type="Opaque",
                    string_data=urls,
                    opts=child,
                )
            )
        k8s.apiextensions.CustomResource(
            f"{name}-alertmanager-config",
            api_version=f"{GROUP}/v1alpha1",
            kind="AlertmanagerConfig",
            metadata=meta("support-platform"),
            spec=alertmanager_config_spec(s, keys),
            opts=ctx.options(self, *depends),
        )
        for file_name, board in dashboards(s).items():
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{board['uid']}",
                metadata=meta(f"dashboard-{board['uid']}", s.operator.dashboard_label),
                data={file_name: json.dumps(board, indent=1, sort_keys=True)},
                opts=child,
            )
        self.register_outputs({})
