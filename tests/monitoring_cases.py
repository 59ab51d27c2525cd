"""Input series for `promtool test rules`: per alert a bad, a healthy and a no-traffic case, and the
SLO burn rates around each threshold of the SRE workbook's windows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

APP = 'namespace="support-app",service="api"'
PG = 'namespace="support-data",service="postgres"'
REDIS = 'namespace="support-data",service="redis"'
APP_LABELS = {"namespace": "support-app", "service": "api"}
PG_LABELS = {"namespace": "support-data", "service": "postgres"}
REDIS_LABELS = {"namespace": "support-data", "service": "redis"}
PVC_LABELS = {"namespace": "support-data", "persistentvolumeclaim": "data-postgres-0"}
POD_LABELS = {"namespace": "support-app", "pod": "api-7d9f-abcde", "container": "api"}
BACKUP_LABELS = {"namespace": "support-data", "cronjob": "postgres-backup"}


def requests(ok: int, failed: int, minutes: int = 60) -> list[tuple[str, str]]:
    """Counters growing by `ok` 200s and `failed` 500s a minute."""
    return [
        (f'http_requests_total{{{APP},status="200"}}', f"0+{ok}x{minutes}"),
        (f'http_requests_total{{{APP},status="500"}}', f"0+{failed}x{minutes}"),
    ]


def latency(fast: int, slow: int, minutes: int = 60) -> list[tuple[str, str]]:
    """Per minute `fast` requests under 0.5 s and `slow` ones between 2 s and 5 s."""
    total = fast + slow
    buckets = {"0.5": fast, "1": fast, "2": fast, "5": total, "+Inf": total}
    series = [
        (f'http_request_duration_seconds_bucket{{{APP},le="{le}"}}', f"0+{n}x{minutes}") for le, n in buckets.items()
    ]
    series.append((f"http_request_duration_seconds_count{{{APP}}}", f"0+{total}x{minutes}"))
    return series


@dataclass(frozen=True)
class Case:
    alert: str
    # case name -> input series; "bad" must fire with `labels`, the others stay silent.
    inputs: dict[str, list[tuple[str, str]]]
    labels: dict[str, str]
    severity: str
    eval_time: str = "20m"
    interval: str = "1m"
    fires_in: tuple[str, ...] = ("bad",)
    extra: dict[str, Any] = field(default_factory=dict)


ALERT_CASES: list[Case] = [
    Case(
        "HighErrorRate",
        {"bad": requests(90, 10), "healthy": requests(99, 1), "no traffic": requests(0, 0)},
        APP_LABELS,
        "critical",
    ),
    Case(
        "HighResponseTime",
        {"bad": latency(2, 98), "healthy": latency(100, 0), "no traffic": latency(0, 0)},
        APP_LABELS,
        "warning",
    ),
    Case(
        "ServiceDown",
        {
            "bad": [(f'up{{{APP},pod="api-0"}}', "0x30"), (f'up{{{APP},pod="api-1"}}', "0x30")],
            "healthy": [(f'up{{{APP},pod="api-0"}}', "0x30"), (f'up{{{APP},pod="api-1"}}', "1x30")],
            "no traffic": [],
        },
        APP_LABELS,
        "critical",
    ),
    Case(
        "DatabaseConnectionsHigh",
        {
            "bad": [
                (f'pg_stat_activity_count{{{PG},datname="support",state="active"}}', "60x30"),
                (f'pg_stat_activity_count{{{PG},datname="support",state="idle"}}', "30x30"),
                (f"pg_settings_max_connections{{{PG}}}", "100x30"),
            ],
            "healthy": [
                (f'pg_stat_activity_count{{{PG},datname="support",state="active"}}', "10x30"),
                (f"pg_settings_max_connections{{{PG}}}", "100x30"),
            ],
            "no traffic": [
                (f'pg_stat_activity_count{{{PG},datname="support",state="active"}}', "0x30"),
                (f"pg_settings_max_connections{{{PG}}}", "100x30"),
            ],
        },
        PG_LABELS,
        "warning",
    ),
    Case(
        "EscalationRateHigh",
        {
            "bad": [(f"chat_messages_total{{{APP}}}", "0+100x40"), (f"chat_escalations_total{{{APP}}}", "0+30x40")],
            "healthy": [(f"chat_messages_total{{{APP}}}", "0+100x40"), (f"chat_escalations_total{{{APP}}}", "0+5x40")],
            "no traffic": [(f"chat_messages_total{{{APP}}}", "0+0x40"), (f"chat_escalations_total{{{APP}}}", "0+0x40")],
        },
        APP_LABELS,
        "warning",
        eval_time="30m",
    ),
    Case(
        "RAGQueryFailureRate",
        {
            "bad": [
                (f'rag_queries_total{{{APP},status="success"}}', "0+80x30"),
                (f'rag_queries_total{{{APP},status="error"}}', "0+20x30"),
            ],
            "healthy": [
                (f'rag_queries_total{{{APP},status="success"}}', "0+98x30"),
                (f'rag_queries_total{{{APP},status="error"}}', "0+2x30"),
            ],
            "no traffic": [
                (f'rag_queries_total{{{APP},status="success"}}', "0+0x30"),
                (f'rag_queries_total{{{APP},status="error"}}', "0+0x30"),
            ],
        },
        APP_LABELS,
        "warning",
    ),
    Case(
        "PostgresDown",
        {"bad": [(f"pg_up{{{PG}}}", "0x30")], "healthy": [(f"pg_up{{{PG}}}", "1x30")], "no traffic": []},
        PG_LABELS,
        "critical",
    ),
    Case(
        "RedisDown",
        {"bad": [(f"redis_up{{{REDIS}}}", "0x30")], "healthy": [(f"redis_up{{{REDIS}}}", "1x30")], "no traffic": []},
        REDIS_LABELS,
        "critical",
    ),
    Case(
        "RedisMemoryHigh",
        {
            "bad": [(f"redis_memory_used_bytes{{{REDIS}}}", "95x30"), (f"redis_memory_max_bytes{{{REDIS}}}", "100x30")],
            "healthy": [
                (f"redis_memory_used_bytes{{{REDIS}}}", "50x30"),
                (f"redis_memory_max_bytes{{{REDIS}}}", "100x30"),
            ],
            # maxmemory 0 means unlimited: no ratio, no alert.
            "no traffic": [
                (f"redis_memory_used_bytes{{{REDIS}}}", "95x30"),
                (f"redis_memory_max_bytes{{{REDIS}}}", "0x30"),
            ],
        },
        REDIS_LABELS,
        "warning",
    ),
    Case(
        "PersistentVolumeFillingUp",
        {
            "bad": [
                (
                    'kubelet_volume_stats_available_bytes{namespace="support-data",'
                    'persistentvolumeclaim="data-postgres-0"}',
                    "5x30",
                ),
                (
                    'kubelet_volume_stats_capacity_bytes{namespace="support-data",'
                    'persistentvolumeclaim="data-postgres-0"}',
                    "100x30",
                ),
            ],
            "healthy": [
                (
                    'kubelet_volume_stats_available_bytes{namespace="support-data",'
                    'persistentvolumeclaim="data-postgres-0"}',
                    "50x30",
                ),
                (
                    'kubelet_volume_stats_capacity_bytes{namespace="support-data",'
                    'persistentvolumeclaim="data-postgres-0"}',
                    "100x30",
                ),
            ],
            # Another team's namespace is not ours to page about.
            "no traffic": [
                ('kubelet_volume_stats_available_bytes{namespace="other",persistentvolumeclaim="x"}', "5x30"),
                ('kubelet_volume_stats_capacity_bytes{namespace="other",persistentvolumeclaim="x"}', "100x30"),
            ],
        },
        PVC_LABELS,
        "warning",
    ),
    Case(
        "PodCrashLooping",
        {
            "bad": [
                (
                    'kube_pod_container_status_restarts_total{namespace="support-app",pod="api-7d9f-abcde",'
                    'container="api"}',
                    "0+1x30",
                )
            ],
            "healthy": [
                (
                    'kube_pod_container_status_restarts_total{namespace="support-app",pod="api-7d9f-abcde",'
                    'container="api"}',
                    "5x30",
                )
            ],
            "no traffic": [],
        },
        POD_LABELS,
        "warning",
    ),
    Case(
        "BackupMissing",
        {
            # Last success at time 0, evaluated 27 hours later (the limit is 26h).
            "bad": [
                ('kube_cronjob_status_last_successful_time{namespace="support-data",cronjob="postgres-backup"}', "0x30")
            ],
            # A success every hour.
            "healthy": [
                (
                    'kube_cronjob_status_last_successful_time{namespace="support-data",cronjob="postgres-backup"}',
                    "0+3600x30",
                )
            ],
            "no traffic": [],
        },
        BACKUP_LABELS,
        "warning",
        eval_time="27h",
        interval="1h",
    ),
    # The heartbeat: fires in every case, with no input at all too.
    Case("Watchdog", {"bad": [], "no traffic": []}, {}, "none", fires_in=("bad", "no traffic")),
]


def ratio_requests(error_percent: float, minutes: int = 60) -> list[tuple[str, str]]:
    """1000 requests a minute, `error_percent` of them 5xx."""
    failed = round(10 * error_percent)
    return requests(1000 - failed, failed, minutes)


# (case, input series, eval time, severities of AvailabilityErrorBudgetBurn that fire). Budget 0.5 %:
# 14.4x = 7.2 %, 6x = 3 %, 3x = 1.5 %, 1x = 0.5 %.
BURN_CASES: list[tuple[str, list[tuple[str, str]], str, tuple[str, ...]]] = [
    ("10 % errors: 20x burns, page and ticket", ratio_requests(10), "30m", ("critical", "warning")),
    ("4 % errors: 8x, page over 6h and 30m only", ratio_requests(4), "30m", ("critical", "warning")),
    ("2 % errors: 4x, ticket over 1d and 2h, no page", ratio_requests(2), "30m", ("warning",)),
    ("0.7 % errors: 1.4x, ticket over 3d and 6h only", ratio_requests(0.7), "30m", ("warning",)),
    ("0.3 % errors: within budget, silent", ratio_requests(0.3), "30m", ()),
    ("no traffic: silent", requests(0, 0), "30m", ()),
]
