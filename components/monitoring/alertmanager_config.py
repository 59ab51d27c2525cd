"""Alertmanager's configuration: routes by severity, inhibition, the Watchdog's dead-man's switch.

The webhook URLs are secrets, so the component builds this inside an apply and stores it in a
Secret; the function itself is pure and takes the resolved URLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from components.config import MonitoringSettings, ReceiverSettings

RECEIVERS = ("critical", "warning", "watchdog")
# A secret's value: a plain string when rendering the config, a Pulumi Output in operator mode.
SecretValue = TypeVar("SecretValue")


def receiver_url(receiver: ReceiverSettings, secrets: Mapping[str, SecretValue | None]) -> str | SecretValue | None:
    if receiver.url is not None:
        return receiver.url
    assert receiver.url_secret is not None  # settings validation guarantees one of them
    return secrets.get(receiver.url_secret)


def alertmanager_config(settings: MonitoringSettings, secrets: Mapping[str, str | None]) -> dict[str, Any]:
    """`secrets` maps secret config keys to their values; an unset one (dev only) leaves its receiver
    without a webhook, so alerts are only visible in Alertmanager's UI."""
    routing = settings.routing
    receivers = []
    for name in RECEIVERS:
        url = receiver_url(getattr(settings.receivers, name), secrets)
        receiver: dict[str, Any] = {"name": name}
        if url is not None:
            # The heartbeat never resolves; everything else says when it is over.
            receiver["webhook_configs"] = [{"url": url, "send_resolved": name != "watchdog"}]
        receivers.append(receiver)
    return {
        "route": {
            "receiver": "warning",
            "group_by": list(routing.group_by),
            "group_wait": routing.group_wait,
            "group_interval": routing.group_interval,
            "repeat_interval": routing.repeat_interval,
            "routes": [
                {
                    "receiver": "watchdog",
                    "matchers": ['alertname="Watchdog"'],
                    "group_wait": "0s",
                    "group_interval": routing.watchdog_repeat_interval,
                    "repeat_interval": routing.watchdog_repeat_interval,
                },
                {"receiver": "critical", "matchers": ['severity="critical"']},
                {"receiver": "warning", "matchers": ['severity="warning"']},
            ],
        },
        # A page already covers the ticket of the same alert in the same namespace.
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname", "namespace"],
            }
        ],
        "receivers": receivers,
    }
