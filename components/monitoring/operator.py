"""Operator mode: the cluster runs the Prometheus Operator (and Grafana with its dashboard sidecar),
so the program emits what they select instead of servers: a ServiceMonitor per declared metrics
endpoint, one PrometheusRule with the generated rule files, an AlertmanagerConfig with the same
routes, receivers and inhibitions as the bundled Alertmanager, and the dashboards as ConfigMaps. Each carries
the selector labels from settings. Pure builders plus a component that registers them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import SLACK_SECRET, SMTP_SECRET, MonitoringSettings
from components.contracts import MetricsEndpoint
from components.kit.context import TierContext
from components.labels import selector_labels, standard_labels
from components.monitoring.alertmanager_config import INHIBITIONS, RECEIVERS, SUBJECTS, TITLES, receiver_url
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


def _matcher(name: str, value: str, match_type: str = "=") -> dict[str, str]:
    return {"name": name, "value": value, "matchType": match_type}


def _receiver(key: str, settings: MonitoringSettings, secret_keys: Mapping[str, str | None]) -> dict[str, Any]:
    """`secret_keys`: what the Secret holds (receiver webhooks by setting key, Slack, SMTP), None where unset."""
    receiver = getattr(settings.receivers, key)
    rendered: dict[str, Any] = {"name": RECEIVERS[key]}
    if receiver.webhook is not None and secret_keys.get(key) is not None:
        rendered["webhookConfigs"] = [
            {"urlSecret": {"name": WEBHOOK_SECRET, "key": secret_keys[key]}, "sendResolved": key != "watchdog"}
        ]
    slack_key = secret_keys.get(SLACK_SECRET)
    if receiver.slack is not None and slack_key is not None:
        slack = receiver.slack
        rendered["slackConfigs"] = [
            {
                "apiURL": {"name": WEBHOOK_SECRET, "key": slack_key},
                "channel": slack.channel,
                "title": slack.title or TITLES[key],
                "text": slack.text,
                "sendResolved": slack.send_resolved,
            }
        ]
    smtp = settings.smtp
    if receiver.email is not None and smtp is not None:
        email: dict[str, Any] = {
            "to": ", ".join(receiver.email.to),
            "from": smtp.sender,
            "smarthost": smtp.smarthost,
            "requireTLS": smtp.require_tls,
            "headers": [{"key": "Subject", "value": receiver.email.subject or SUBJECTS[key]}],
            "text": receiver.email.text,
            "sendResolved": receiver.email.send_resolved,
        }
        password_key = secret_keys.get(SMTP_SECRET)
        if smtp.auth_username is not None and password_key is not None:
            email |= {
                "authUsername": smtp.auth_username,
                "authPassword": {"name": WEBHOOK_SECRET, "key": password_key},
            }
        rendered["emailConfigs"] = [email]
    return rendered


def alertmanager_config_spec(settings: MonitoringSettings, secret_keys: Mapping[str, str | None]) -> dict[str, Any]:
    """The bundled Alertmanager's routes, receivers and inhibitions as an AlertmanagerConfig."""
    routing = settings.routing
    return {
        "route": {
            "receiver": RECEIVERS["warning"],
            "groupBy": list(routing.group_by),
            "groupWait": routing.group_wait,
            "groupInterval": routing.group_interval,
            "repeatInterval": routing.repeat_interval,
            "routes": [
                {
                    "receiver": RECEIVERS["watchdog"],
                    "matchers": [_matcher("alertname", "Watchdog")],
                    "groupWait": "0s",
                    "groupInterval": routing.watchdog_repeat_interval,
                    "repeatInterval": routing.watchdog_repeat_interval,
                },
                {"receiver": RECEIVERS["critical"], "matchers": [_matcher("severity", "critical")]},
                {"receiver": RECEIVERS["warning"], "matchers": [_matcher("severity", "warning")]},
            ],
        },
        "inhibitRules": [
            {
                "sourceMatch": [_matcher(label, value, op) for label, op, value in rule.source],
                "targetMatch": [_matcher(label, value, op) for label, op, value in rule.target],
                **({"equal": list(rule.equal)} if rule.equal else {}),
            }
            for rule in INHIBITIONS
        ],
        "receivers": [_receiver(key, settings, secret_keys) for key in RECEIVERS],
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

        # Webhook and Slack URLs and the SMTP password are secrets: a Secret holds them, the
        # AlertmanagerConfig references its keys.
        values: dict[str, pulumi.Output[str]] = {}
        keys: dict[str, str | None] = {}
        for receiver in RECEIVERS:
            webhook = getattr(s.receivers, receiver).webhook
            found = receiver_url(webhook, args.receiver_secrets) if webhook is not None else None
            keys[receiver] = receiver if found is not None else None
            if found is not None:
                values[receiver] = pulumi.Output.secret(pulumi.Output.from_input(found))
        needed = s.required_secrets()
        for secret_key, entry in ((SLACK_SECRET, "slack"), (SMTP_SECRET, "smtp-password")):
            given = args.receiver_secrets.get(secret_key) if secret_key in needed else None
            keys[secret_key] = entry if given is not None else None
            if given is not None:
                values[entry] = pulumi.Output.secret(given)
        depends: list[pulumi.Resource] = []
        if values:
            depends.append(
                k8s.core.v1.Secret(
                    f"{name}-webhooks",
                    metadata=meta(WEBHOOK_SECRET),
                    type="Opaque",
                    string_data=values,
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
