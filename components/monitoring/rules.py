"""Alerting and recording rules as code: pure functions from settings to Prometheus rule files.

Every ratio is aggregated on both sides by the same labels (namespace, service), so numerator and
denominator always match, and each ratio alert also requires some traffic: no requests gives no
alert instead of NaN or a division by a missing series. The SLO is turned into recording rules per
window and multi-window, multi-burn-rate alerts (Google SRE workbook, "Alerting on SLOs"): page when
1h and 5m burn faster than 14.4x or 6h and 30m faster than 6x; ticket when 1d and 2h burn faster
than 3x or 3d and 6h faster than 1x. Page and ticket share an alert name and differ in severity, so
Alertmanager's critical-mutes-warning inhibition keeps one notification per incident.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.config import MonitoringSettings

BY = "namespace, service"
RATE_WINDOW = "5m"
RAG_FAILED = 'rag_queries_total{status!="success"}'
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
SLO_RECORD = "slo:sli_error:ratio_rate{window}"
# (severity, for, (long, short, burn factor) pairs): SRE workbook, table 6 (30-day budget).
BURN_ALERTS: tuple[tuple[str, str, tuple[tuple[str, str, float], ...]], ...] = (
    ("critical", "2m", (("1h", "5m", 14.4), ("6h", "30m", 6.0))),
    ("warning", "15m", (("1d", "2h", 3.0), ("3d", "6h", 1.0))),
)
SLO_TITLES = {"availability": "Availability", "latency": "Latency", "errors": "Errors"}
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(duration: str) -> float:
    return sum(int(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(duration))


def number(value: float) -> str:
    """A float as PromQL and Prometheus 3 label values print it: 2.0 -> 2, 0.005 -> 0.005."""
    return f"{round(value, 10):g}"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    severity: str
    summary: str
    description: str
    duration: str = "5m"

    def rule(self, runbook_base_url: str) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.duration != "0s":
            rule["for"] = self.duration
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": f"{runbook_base_url}/{self.name.lower()}",
        }
        return rule


def _ratio(bad: str, total: str, window: str = RATE_WINDOW) -> str:
    return f"sum by ({BY}) (rate({bad}[{window}])) / sum by ({BY}) (rate({total}[{window}]))"


def _with_traffic(expr: str, total: str, minimum: float, window: str = RATE_WINDOW) -> str:
    return f"({expr}) and sum by ({BY}) (rate({total}[{window}])) > {number(minimum)}"


def _namespace_matcher(namespaces: Sequence[str]) -> str:
    # Namespaces are DNS labels ([a-z0-9-]): nothing in them is special in a regex, and PromQL strings
    # reject Python's escapes (re.escape writes "\\-").
    return "|".join(sorted(set(namespaces)))


def platform_alerts(settings: MonitoringSettings, namespaces: Sequence[str]) -> list[Alert]:
    t = settings.thresholds
    ns = _namespace_matcher(namespaces)
    errors = 'http_requests_total{status=~"5.."}'
    return [
        Alert(
            "HighErrorRate",
            _with_traffic(
                f"{_ratio(errors, 'http_requests_total')} > {number(t.error_rate)}",
                "http_requests_total",
                t.min_request_rate,
            ),
            "critical",
            "{{ $labels.service }} answers more than " + f"{number(t.error_rate * 100)} % of requests with 5xx",
            "{{ $labels.service }} in {{ $labels.namespace }}: {{ $value | humanizePercentage }} of requests "
            "failed with 5xx over 5 minutes.",
        ),
        Alert(
            "HighResponseTime",
            _with_traffic(
                f"histogram_quantile(0.95, sum by ({BY}, le)"
                f" (rate(http_request_duration_seconds_bucket[{RATE_WINDOW}])))"
                f" > {number(t.response_time_p95_seconds)}",
                "http_request_duration_seconds_count",
                t.min_request_rate,
            ),
            "warning",
            "{{ $labels.service }} p95 latency above " + f"{number(t.response_time_p95_seconds)} s",
            "{{ $labels.service }} in {{ $labels.namespace }}: p95 request latency is {{ $value | humanizeDuration }}.",
        ),
        Alert(
            "ServiceDown",
            f"max by ({BY}) (up) == 0",
            "critical",
            "{{ $labels.service }} cannot be scraped",
            "Every target of {{ $labels.service }} in {{ $labels.namespace }} has been down for 2 minutes.",
            "2m",
        ),
        Alert(
            "DatabaseConnectionsHigh",
            f"sum by ({BY}) (pg_stat_activity_count) / max by ({BY}) (pg_settings_max_connections > 0)"
            f" > {number(t.database_connections)}",
            "warning",
            "PostgreSQL connections above " + f"{number(t.database_connections * 100)} % of max_connections",
            "{{ $labels.service }} in {{ $labels.namespace }} uses {{ $value | humanizePercentage }} of its "
            "connections; check the api's pool (DB_POOL_SIZE, DB_MAX_OVERFLOW) and replicas.",
        ),
        Alert(
            "EscalationRateHigh",
            _with_traffic(
                f"{_ratio('chat_escalations_total', 'chat_messages_total', '15m')} > {number(t.escalation_rate)}",
                "chat_messages_total",
                0,
                "15m",
            ),
            "warning",
            "More than " + f"{number(t.escalation_rate * 100)} % of chat messages escalate to a human",
            "{{ $labels.service }}: {{ $value | humanizePercentage }} of chat messages were escalated over "
            "15 minutes; the assistant may be failing (LLM, RAG) or a new topic is trending.",
            "10m",
        ),
        Alert(
            "RAGQueryFailureRate",
            _with_traffic(
                _ratio(RAG_FAILED, "rag_queries_total") + f" > {number(t.rag_failure_rate)}",
                "rag_queries_total",
                0,
            ),
            "warning",
            "More than " + f"{number(t.rag_failure_rate * 100)} % of RAG queries fail",
            "{{ $labels.service }}: {{ $value | humanizePercentage }} of RAG queries did not succeed over 5 "
            "minutes; check Chroma and its token.",
        ),
        Alert(
            "PostgresDown",
            f"max by ({BY}) (pg_up) == 0",
            "critical",
            "PostgreSQL is down",
            "The exporter of {{ $labels.service }} in {{ $labels.namespace }} cannot reach PostgreSQL.",
            "1m",
        ),
        Alert(
            "RedisDown",
            f"max by ({BY}) (redis_up) == 0",
            "critical",
            "Redis is down",
            "The exporter of {{ $labels.service }} in {{ $labels.namespace }} cannot reach Redis.",
            "1m",
        ),
        Alert(
            "RedisMemoryHigh",
            f"max by ({BY}) (redis_memory_used_bytes) / max by ({BY}) (redis_memory_max_bytes > 0)"
            f" > {number(t.redis_memory)}",
            "warning",
            "Redis uses more than " + f"{number(t.redis_memory * 100)} % of maxmemory",
            "{{ $labels.service }} in {{ $labels.namespace }} uses {{ $value | humanizePercentage }} of maxmemory; "
            "keys will be evicted or writes refused.",
        ),
        Alert(
            "PersistentVolumeFillingUp",
            f'min by (namespace, persistentvolumeclaim) (kubelet_volume_stats_available_bytes{{namespace=~"{ns}"}}'
            f' / kubelet_volume_stats_capacity_bytes{{namespace=~"{ns}"}}) < {number(t.volume_free)}',
            "warning",
            "Volume {{ $labels.persistentvolumeclaim }} is almost full",
            "{{ $labels.persistentvolumeclaim }} in {{ $labels.namespace }} has {{ $value | humanizePercentage }} "
            "free.",
        ),
        Alert(
            "PodCrashLooping",
            "sum by (namespace, pod, container)"
            f' (increase(kube_pod_container_status_restarts_total{{namespace=~"{ns}"}}[15m])) >= {t.crash_restarts}',
            "warning",
            "{{ $labels.pod }} is crash looping",
            "Container {{ $labels.container }} of {{ $labels.pod }} in {{ $labels.namespace }} restarted "
            "{{ $value }} times in 15 minutes.",
            "0s",
        ),
        Alert(
            "BackupMissing",
            f'time() - max by (namespace, cronjob) (kube_cronjob_status_last_successful_time{{namespace=~"{ns}",'
            f' cronjob=~".*backup.*"}}) > {number(duration_seconds(t.backup_max_age))}',
            "warning",
            "No successful backup for " + t.backup_max_age,
            "CronJob {{ $labels.cronjob }} in {{ $labels.namespace }} last succeeded {{ $value | humanizeDuration }} "
            "ago.",
            "0s",
        ),
        Alert(
            "Watchdog",
            "vector(1)",
            "none",
            "The alerting pipeline is alive",
            "Always firing. Alertmanager sends it to the dead-man's switch, which pages when it stops arriving.",
            "0s",
        ),
    ]


def slo_budgets(settings: MonitoringSettings) -> dict[str, float]:
    """SLO name -> error budget (the allowed share of bad events)."""
    slo = settings.slo
    return {
        "availability": (100 - slo.availability) / 100,
        "latency": (100 - slo.latency) / 100,
        "errors": (100 - slo.errors) / 100,
    }


def sli_error_expr(name: str, settings: MonitoringSettings, window: str) -> str:
    if name == "availability":
        return _ratio('http_requests_total{status=~"5.."}', "http_requests_total", window)
    if name == "latency":
        le = number(settings.slo.latency_seconds)
        return (
            f'1 - sum by ({BY}) (rate(http_request_duration_seconds_bucket{{le="{le}"}}[{window}]))'
            f" / sum by ({BY}) (rate(http_request_duration_seconds_count[{window}]))"
        )
    if name == "errors":
        return _ratio("errors_total", "http_requests_total", window)
    raise KeyError(name)


def slo_recording_rules(settings: MonitoringSettings) -> list[dict[str, Any]]:
    return [
        {
            "record": SLO_RECORD.format(window=window),
            "expr": sli_error_expr(name, settings, window),
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
                {"name": "support-platform.slo.records", "interval": interval, "rules": slo_recording_rules(settings)},
                {
                    "name": "support-platform.slo.alerts",
                    "interval": interval,
                    "rules": [a.rule(base) for a in slo_alerts(settings)],
                },
            ]
        },
    }


def recorded_metric_names(settings: MonitoringSettings) -> frozenset[str]:
    return frozenset(r["record"] for r in slo_recording_rules(settings))
