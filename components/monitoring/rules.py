"""Alerting and recording rules as code: pure functions from settings to Prometheus rule files.

The alerts are in alerts.py. The SLO (000's SLAs) is turned into recording rules per window and
multi-window, multi-burn-rate alerts (Google SRE workbook, "Alerting on SLOs"): page when 1h and 5m
burn faster than 14.4x or 6h and 30m faster than 6x; ticket when 1d and 2h burn faster than 3x or 3d
and 6h faster than 1x. Page and ticket share an alert name and differ in severity, so Alertmanager's
critical-mutes-warning inhibition keeps one notification per incident. The SLIs read the service's own
series: the share of time its targets are up, its chat messages slower than a declared bucket, and
its errors per chat message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.config import MonitoringSettings
from components.monitoring.alerts import BY, Alert, platform_alerts
from components.monitoring.promql import alternatives, le, number

SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
SLO_RECORD = "slo:sli_error:ratio_rate{window}"
# (severity, for, (long, short, burn factor) pairs): SRE workbook, table 6 (30-day budget).
BURN_ALERTS: tuple[tuple[str, str, tuple[tuple[str, str, float], ...]], ...] = (
    ("critical", "2m", (("1h", "5m", 14.4), ("6h", "30m", 6.0))),
    ("warning", "15m", (("1d", "2h", 3.0), ("3d", "6h", 1.0))),
)
SLO_TITLES = {"availability": "Availability", "latency": "Latency", "errors": "Errors"}


def slo_budgets(settings: MonitoringSettings) -> dict[str, float]:
    """SLO name -> error budget (the allowed share of bad events)."""
    slo = settings.slo
    return {
        "availability": (100 - slo.availability) / 100,
        "latency": (100 - slo.latency) / 100,
        "errors": (100 - slo.errors) / 100,
    }


def sli_error_expr(name: str, settings: MonitoringSettings, window: str, namespaces: Sequence[str]) -> str:
    job = f'namespace=~"{alternatives(namespaces)}", job="{settings.slo.service}"'
    if name == "availability":
        # Time-based: the share of the window its targets did not answer a scrape.
        return f"1 - avg by ({BY}) (avg_over_time(up{{{job}}}[{window}]))"
    if name == "latency":
        bound = le(settings.slo.latency_seconds)
        return (
            f'1 - sum by ({BY}) (rate(chat_message_duration_seconds_bucket{{{job}, le="{bound}"}}[{window}]))'
            f" / sum by ({BY}) (rate(chat_message_duration_seconds_count{{{job}}}[{window}]))"
        )
    if name == "errors":
        return (
            f"sum by ({BY}) (rate(errors_total{{{job}}}[{window}]))"
            f" / sum by ({BY}) (rate(chat_messages_total{{{job}}}[{window}]))"
        )
    raise KeyError(name)


def slo_recording_rules(settings: MonitoringSettings, namespaces: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {
            "record": SLO_RECORD.format(window=window),
            "expr": sli_error_expr(name, settings, window, namespaces),
            "labels": {"slo": name},
        }
        for name in slo_budgets(settings)
        for window in SLO_WINDOWS
    ]


def slo_alerts(settings: MonitoringSettings) -> list[Alert]:
    alerts = []
    for name, budget in slo_budgets(settings).items():
        objective = number(100 - budget * 100)
        for severity, duration, pairs in BURN_ALERTS:
            branches = [
                f'({SLO_RECORD.format(window=long)}{{slo="{name}"}} > {number(factor * budget)}'
                f' and {SLO_RECORD.format(window=short)}{{slo="{name}"}} > {number(factor * budget)})'
                for long, short, factor in pairs
            ]
            kind = "fast: page" if severity == "critical" else "slow: ticket"
            windows = ", ".join(f"{number(f)}x over {long} and {short}" for long, short, f in pairs)
            alerts.append(
                Alert(
                    f"{SLO_TITLES[name]}ErrorBudgetBurn",
                    " or ".join(branches),
                    severity,
                    f"{{{{ $labels.service }}}} burns its {name} error budget ({kind})",
                    f"{{{{ $labels.service }}}} in {{{{ $labels.namespace }}}} spends the {name} SLO's "
                    f"({objective} %) error budget too fast: {windows}.",
                    duration,
                )
            )
    return alerts


def alerts(settings: MonitoringSettings, namespaces: Sequence[str]) -> list[Alert]:
    """Every alert the rule files hold."""
    return [*platform_alerts(settings, namespaces), *slo_alerts(settings)]


def rule_files(settings: MonitoringSettings, namespaces: Sequence[str]) -> dict[str, dict[str, Any]]:
    """File name -> Prometheus rule file, as `promtool check rules` reads it."""
    base = settings.runbook_base_url
    interval = settings.scrape_interval
    return {
        "platform-alerts.yaml": {
            "groups": [
                {
                    "name": "support-platform.alerts",
                    "interval": interval,
                    "rules": [a.rule(base) for a in platform_alerts(settings, namespaces)],
                }
            ]
        },
        "slo.yaml": {
            "groups": [
                {
                    "name": "support-platform.slo.records",
                    "interval": interval,
                    "rules": slo_recording_rules(settings, namespaces),
                },
                {
                    "name": "support-platform.slo.alerts",
                    "interval": interval,
                    "rules": [a.rule(base) for a in slo_alerts(settings)],
                },
            ]
        },
    }


def recorded_metric_names() -> frozenset[str]:
    return frozenset(SLO_RECORD.format(window=window) for window in SLO_WINDOWS)
