"""Alertmanager's configuration: 000's routes by severity and receivers (webhook, Slack, e-mail),
inhibition so that one incident pages once, and the Watchdog's dead-man's switch.

Webhook URLs, the Slack URL and the SMTP password are secrets, so the component builds this inside an
apply and stores it in a Secret; the functions here are pure and take the resolved values. Operator mode
(operator.py) renders the same routes, receivers and inhibitions as an AlertmanagerConfig.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from components.config import SLACK_SECRET, SMTP_SECRET, MonitoringSettings, ReceiverSettings, WebhookSettings
from components.monitoring.alerts import STORES

# Setting key -> Alertmanager receiver name (000's names for critical and warning).
RECEIVERS = {"critical": "critical-alerts", "warning": "warning-alerts", "watchdog": "watchdog"}
# 000's Slack titles and e-mail subjects, per receiver, where the settings give none.
TITLES = {"critical": "Critical Alert", "warning": "Warning Alert", "watchdog": "Watchdog"}
SUBJECTS = {
    "critical": "[CRITICAL] Customer Support Alert",
    "warning": "[WARNING] Customer Support Alert",
    "watchdog": "[WATCHDOG] Customer Support alerting heartbeat",
}
# A secret's value: a plain string when rendering the config, a Pulumi Output in operator mode.
SecretValue = TypeVar("SecretValue")
# What fails when a store is down: the app's errors, latency, escalations, and the store's connections.
NEEDS_STORES = (
    "HighErrorRate",
    "HighResponseTime",
    "EscalationRateHigh",
    "DatabaseConnectionsHigh",
    "ErrorsErrorBudgetBurn",
    "LatencyErrorBudgetBurn",
)
Matcher = tuple[str, str, str]


@dataclass(frozen=True)
class Inhibition:
    """Alerts matching all of `target` are muted while one matching all of `source` fires with the same
    values of `equal` (a label absent on both counts as equal)."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]
    why: str


INHIBITIONS = (
    Inhibition(
        (("severity", "=", "critical"),),
        (("severity", "=", "warning"),),
        ("alertname", "namespace", "service"),
        "000's rule: a page covers the ticket of the same alert (equal on the labels our alerts carry: "
        "000's `instance` is absent from aggregated alerts, which would mute every service's ticket)",
    ),
    Inhibition(
        (("alertname", "=", "ServiceDown"),),
        (("alertname", "!=", "ServiceDown"), ("severity", "=~", "critical|warning")),
        ("namespace", "service"),
        "a target that is down explains every other alert of its service (its SLO burn included)",
    ),
    Inhibition(
        (("alertname", "=~", "PostgresDown|RedisDown"),),
        (("alertname", "=~", "|".join(NEEDS_STORES)),),
        (),
        "a store that is down explains the app's errors, latency and connections",
    ),
    Inhibition(
        (("alertname", "=", "ServiceDown"), ("service", "=~", "|".join(STORES))),
        (("alertname", "=~", "|".join(NEEDS_STORES)),),
        (),
        "so does a store whose pod (and exporter) is gone",
    ),
    Inhibition(
        (("alertname", "=", "ErrorsErrorBudgetBurn"),),
        (("alertname", "=", "HighErrorRate"),),
        ("namespace", "service"),
        "the SLO page covers the threshold ticket of the same symptom",
    ),
    Inhibition(
        (("alertname", "=", "LatencyErrorBudgetBurn"),),
        (("alertname", "=", "HighResponseTime"),),
        ("namespace", "service"),
        "the SLO page covers the threshold ticket of the same symptom",
    ),
    Inhibition(
        (("alertname", "=", "DiskSpaceLow"),),
        (("alertname", "=", "DiskSpaceHigh"),),
        ("instance", "device", "mountpoint"),
        "below 10 % free is already critical (000); 85 % used (001) is the same disk",
    ),
)


def matcher(m: Matcher) -> str:
    label, op, value = m
    return f'{label}{op}"{value}"'


def receiver_url(webhook: WebhookSettings, secrets: Mapping[str, SecretValue | None]) -> str | SecretValue | None:
    if webhook.url is not None:
        return webhook.url
    assert webhook.url_secret is not None  # settings validation guarantees one of them
    return secrets.get(webhook.url_secret)


def _receiver(key: str, receiver: ReceiverSettings, secrets: Mapping[str, str | None]) -> dict[str, Any]:
    """One receiver; a part whose secret is unset (dev only) is left out."""
    rendered: dict[str, Any] = {"name": RECEIVERS[key]}
    url = receiver_url(receiver.webhook, secrets) if receiver.webhook is not None else None
    if url is not None:
        # The heartbeat never resolves; everything else says when it is over.
        rendered["webhook_configs"] = [{"url": url, "send_resolved": key != "watchdog"}]
    slack_url = secrets.get(SLACK_SECRET)
    if receiver.slack is not None and slack_url is not None:
        slack = receiver.slack
        rendered["slack_configs"] = [
            {
                "api_url": slack_url,
                "channel": slack.channel,
                "title": slack.title or TITLES[key],
                "text": slack.text,
                "send_resolved": slack.send_resolved,
            }
        ]
    if receiver.email is not None:
        email = receiver.email
        # 000 writes `subject:` and `body:`, which Alertmanager's e-mail notifier does not know (its
        # configuration is read strictly): the subject is a header, the body its `text`.
        rendered["email_configs"] = [
            {
                "to": ", ".join(email.to),
                "headers": {"Subject": email.subject or SUBJECTS[key]},
                "text": email.text,
                "send_resolved": email.send_resolved,
            }
        ]
    return rendered


def _global(settings: MonitoringSettings, secrets: Mapping[str, str | None]) -> dict[str, Any]:
    smtp = settings.smtp
    if smtp is None:
        return {}
    rendered: dict[str, Any] = {
        "smtp_smarthost": smtp.smarthost,
        "smtp_from": smtp.sender,
        "smtp_require_tls": smtp.require_tls,
    }
    password = secrets.get(SMTP_SECRET)
    if smtp.auth_username is not None and password is not None:
        rendered |= {"smtp_auth_username": smtp.auth_username, "smtp_auth_password": password}
    return {"global": rendered}


def alertmanager_config(settings: MonitoringSettings, secrets: Mapping[str, str | None]) -> dict[str, Any]:
    """`secrets` maps secret config keys to their values; an unset one (dev only) leaves its part out, so
    alerts are only visible in Alertmanager's UI."""
    routing = settings.routing
    return {
        **_global(settings, secrets),
        "route": {
            # 000 defaults to a webhook on 127.0.0.1, which answers nothing inside a pod: warning instead.
            "receiver": RECEIVERS["warning"],
            "group_by": list(routing.group_by),
            "group_wait": routing.group_wait,
            "group_interval": routing.group_interval,
            "repeat_interval": routing.repeat_interval,
            "routes": [
                {
                    "receiver": RECEIVERS["watchdog"],
                    "matchers": ['alertname="Watchdog"'],
                    "group_wait": "0s",
                    "group_interval": routing.watchdog_repeat_interval,
                    "repeat_interval": routing.watchdog_repeat_interval,
                },
                {"receiver": RECEIVERS["critical"], "matchers": ['severity="critical"']},
                {"receiver": RECEIVERS["warning"], "matchers": ['severity="warning"']},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": [matcher(m) for m in rule.source],
                "target_matchers": [matcher(m) for m in rule.target],
                **({"equal": list(rule.equal)} if rule.equal else {}),
            }
            for rule in INHIBITIONS
        ],
        "receivers": [_receiver(key, r, secrets) for key, r in settings.receivers.named().items()],
    }
