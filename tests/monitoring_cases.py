"""Input series for `promtool test rules`: per alert a case that fires and cases that stay silent (healthy,
no traffic, and what the documents' literal expressions would get wrong), and the SLO burn rates around
each threshold of the SRE workbook's windows.

Histogram inputs carry `le` exactly as Prometheus 3 stores it (components/monitoring/promql.le): promtool
takes input series as written, so a test with le="5" would pass while production, which stores "5.0",
stayed empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.config import PYTHON_CLIENT_BUCKETS
from components.monitoring.promql import le

APP_LABELS = {"namespace": "support-app", "service": "api"}
PG_LABELS = {"namespace": "support-data", "service": "postgres"}
REDIS_LABELS = {"namespace": "support-data", "service": "redis"}
PVC_LABELS = {"namespace": "support-data", "persistentvolumeclaim": "data-postgres-0"}
POD_LABELS = {"namespace": "support-app", "pod": "api-7d9f-abcde", "container": "api"}
BACKUP_LABELS = {"namespace": "support-data", "cronjob": "postgres-backup"}
NODE = {"instance": "10.0.0.7:9100", "job": "node-exporter"}
DISK = {**NODE, "device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"}
TMPFS = {**NODE, "device": "tmpfs", "fstype": "tmpfs", "mountpoint": "/run"}
Series = list[tuple[str, str]]


def sel(metric: str, labels: Mapping[str, str]) -> str:
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


# The api's series carry their scrape job too (the SLIs select job="api").
APP = {**APP_LABELS, "job": "api"}


def target(pod: str, job: str = "api", **labels: str) -> dict[str, str]:
    """The labels of one scrape target, as the scrape job writes them."""
    return {"namespace": "support-app", "service": job, "job": job, "pod": pod, "instance": f"{pod}:8000", **labels}


def counter(metric: str, labels: Mapping[str, str], per_minute: float, minutes: int = 60) -> tuple[str, str]:
    return sel(metric, labels), f"0+{per_minute:g}x{minutes}"


def messages(per_minute: int, errors: int, minutes: int = 60) -> Series:
    """Chat messages split by `role` (as 000's dashboard shows them) and errors without it."""
    half = per_minute / 2
    return [
        counter("chat_messages_total", {**APP, "role": "user"}, half, minutes),
        counter("chat_messages_total", {**APP, "role": "assistant"}, half, minutes),
        counter("errors_total", APP, errors, minutes),
    ]


def histogram(
    metric: str,
    labels: Mapping[str, str],
    observations: Mapping[float, int],
    buckets: Sequence[float] = PYTHON_CLIENT_BUCKETS,
    minutes: int = 60,
) -> Series:
    """A classic histogram observing, each minute, `count` values of `seconds` for each entry: cumulative
    `_bucket` series for every declared bound (le as Prometheus 3 stores it), `_count` and `_sum`."""
    total = sum(observations.values())
    series = [
        counter(
            f"{metric}_bucket",
            {**labels, "le": le(bound)},
            sum(n for value, n in observations.items() if value <= bound),
            minutes,
        )
        for bound in buckets
    ]
    series.append(counter(f"{metric}_bucket", {**labels, "le": "+Inf"}, total, minutes))
    series.append(counter(f"{metric}_count", labels, total, minutes))
    series.append(counter(f"{metric}_sum", labels, sum(v * n for v, n in observations.items()), minutes))
    return series


def chat_latency(fast: int, slow: int, minutes: int = 60) -> Series:
    """Per minute `fast` replies in 0.3 s and `slow` ones in 6 s."""
    observations = {0.3: fast, 6.0: slow}
    return histogram(
        "chat_message_duration_seconds", APP, {v: n for v, n in observations.items() if n}, minutes=minutes
    )


@dataclass(frozen=True)
class Case:
    alert: str
    # case name -> input series; the cases in `fires_in` fire with `labels`, the others stay silent.
    inputs: dict[str, Series]
    labels: dict[str, str]
    severity: str
    eval_time: str = "20m"
    interval: str = "1m"
    fires_in: tuple[str, ...] = ("bad",)
    extra: dict[str, Any] = field(default_factory=dict)


def _const(metric: str, labels: Mapping[str, str], value: float, samples: int = 30) -> tuple[str, str]:
    return sel(metric, labels), f"{value:g}x{samples}"


APP_CASES: list[Case] = [
    Case(
        "HighErrorRate",
        {
            "bad": messages(100, 10),
            "healthy": messages(100, 2),
            "no traffic": messages(0, 0),
        },
        APP_LABELS,
        "warning",
    ),
    Case(
        "HighResponseTime",
        {"bad": chat_latency(2, 98), "healthy": chat_latency(100, 0), "no traffic": chat_latency(0, 0)},
        APP_LABELS,
        "warning",
    ),
    Case(
        "ServiceDown",
        {
            # One dead pod of three pages (000: `up == 0`, per target).
            "bad": [_const("up", target(f"api-{i}"), 0 if i == 1 else 1) for i in range(3)],
            "healthy": [_const("up", target(f"api-{i}"), 1) for i in range(3)],
            "no traffic": [],
            # The MCP server has its own, more patient alert (002: unavailable for more than 5 minutes).
            "mcp": [_const("up", target("mcp-0", "mcp"), 0)],
            # Another team's target, which the cluster's Prometheus may scrape too (operator mode).
            "foreign": [_const("up", {**target("x-0"), "namespace": "shop"}, 0)],
        },
        target("api-1"),
        "critical",
    ),
    Case(
        "MCPServerDown",
        {
            "bad": [_const("up", target("mcp-0", "mcp"), 0)],
            "healthy": [_const("up", target("mcp-0", "mcp"), 1)],
            "no traffic": [],
            # Down for three minutes: under 002's five.
            "short": [(sel("up", target("mcp-0", "mcp")), "1x16 0x3 1x10")],
        },
        target("mcp-0", "mcp"),
        "critical",
    ),
    Case(
        "EscalationRateHigh",
        {
            "bad": [counter("chat_escalations_total", APP, 12)],
            "healthy": [counter("chat_escalations_total", APP, 3)],
            "no traffic": [counter("chat_escalations_total", APP, 0)],
        },
        APP_LABELS,
        "warning",
    ),
    Case(
        "RAGQueryFailureRate",
        {
            "bad": [
                counter("rag_queries_total", {**APP, "status": "success"}, 80),
                counter("rag_queries_total", {**APP, "status": "error"}, 20),
            ],
            # 000's literal ratio is 100 % whenever any query fails; here 2 % is healthy.
            "healthy": [
                counter("rag_queries_total", {**APP, "status": "success"}, 98),
                counter("rag_queries_total", {**APP, "status": "error"}, 2),
            ],
            "no traffic": [
                counter("rag_queries_total", {**APP, "status": "success"}, 0),
                counter("rag_queries_total", {**APP, "status": "error"}, 0),
            ],
        },
        APP_LABELS,
        "warning",
    ),
]

DATA_CASES: list[Case] = [
    Case(
        "DatabaseConnectionsHigh",
        {
            "bad": [
                _const("pg_stat_activity_count", {**PG_LABELS, "datname": "support", "state": "active"}, 60),
                _const("pg_stat_activity_count", {**PG_LABELS, "datname": "support", "state": "idle"}, 30),
                _const("pg_settings_max_connections", PG_LABELS, 100),
            ],
            # 000's `> 80` at the platform's max_connections 200: 90 connections are 45 %.
            "healthy": [
                _const("pg_stat_activity_count", {**PG_LABELS, "datname": "support", "state": "idle"}, 90),
                _const("pg_settings_max_connections", PG_LABELS, 200),
            ],
            "no traffic": [
                _const("pg_stat_activity_count", {**PG_LABELS, "datname": "support", "state": "active"}, 0),
                _const("pg_settings_max_connections", PG_LABELS, 100),
            ],
        },
        PG_LABELS,
        "warning",
    ),
    Case(
        "PostgresDown",
        {"bad": [_const("pg_up", PG_LABELS, 0)], "healthy": [_const("pg_up", PG_LABELS, 1)], "no traffic": []},
        PG_LABELS,
        "critical",
    ),
    Case(
        "RedisDown",
        {
            "bad": [_const("redis_up", REDIS_LABELS, 0)],
            "healthy": [_const("redis_up", REDIS_LABELS, 1)],
            "no traffic": [],
        },
        REDIS_LABELS,
        "critical",
    ),
    Case(
        "RedisMemoryHigh",
        {
            "bad": [
                _const("redis_memory_used_bytes", REDIS_LABELS, 95),
                _const("redis_memory_max_bytes", REDIS_LABELS, 100),
            ],
            "healthy": [
                _const("redis_memory_used_bytes", REDIS_LABELS, 50),
                _const("redis_memory_max_bytes", REDIS_LABELS, 100),
            ],
            # maxmemory 0 means unlimited: no ratio, no alert.
            "no traffic": [
                _const("redis_memory_used_bytes", REDIS_LABELS, 95),
                _const("redis_memory_max_bytes", REDIS_LABELS, 0),
            ],
        },
        REDIS_LABELS,
        "warning",
    ),
    Case(
        "PersistentVolumeFillingUp",
        {
            "bad": [
                _const("kubelet_volume_stats_available_bytes", PVC_LABELS, 5),
                _const("kubelet_volume_stats_capacity_bytes", PVC_LABELS, 100),
            ],
            "healthy": [
                _const("kubelet_volume_stats_available_bytes", PVC_LABELS, 50),
                _const("kubelet_volume_stats_capacity_bytes", PVC_LABELS, 100),
            ],
            # Another team's namespace is not ours to page about.
            "no traffic": [
                _const("kubelet_volume_stats_available_bytes", {"namespace": "other", "persistentvolumeclaim": "x"}, 5),
                _const(
                    "kubelet_volume_stats_capacity_bytes", {"namespace": "other", "persistentvolumeclaim": "x"}, 100
                ),
            ],
        },
        PVC_LABELS,
        "warning",
    ),
    Case(
        "BackupMissing",
        {
            # Last success at time 0, evaluated 27 hours later (the limit is 26h).
            "bad": [_const("kube_cronjob_status_last_successful_time", BACKUP_LABELS, 0)],
            # A success every hour.
            "healthy": [(sel("kube_cronjob_status_last_successful_time", BACKUP_LABELS), "0+3600x30")],
            "no traffic": [],
        },
        BACKUP_LABELS,
        "warning",
        eval_time="27h",
        interval="1h",
    ),
]

RESTARTS = "kube_pod_container_status_restarts_total"
CONTAINER = {"namespace": "support-app", "pod": "api-7d9f-abcde", "container": "api"}
# cAdvisor's pod-level cgroup (container="") and pause container: never a container of ours.
POD_CGROUP = {**CONTAINER, "container": ""}
PAUSE = {**CONTAINER, "container": "POD"}
KUBERNETES_CASES: list[Case] = [
    Case(
        "KubernetesPodCrashLooping",
        {
            "bad": [(sel(RESTARTS, POD_LABELS), "0+1x30")],
            # 001: any restart within 15 minutes (rate > 0), held for 5 minutes.
            "one restart": [(sel(RESTARTS, POD_LABELS), "5x10 6x20")],
            "healthy": [_const(RESTARTS, POD_LABELS, 5)],
            "no traffic": [],
        },
        POD_LABELS,
        "warning",
        fires_in=("bad", "one restart"),
    ),
    Case(
        "ContainerHighMemoryUsage",
        {
            "bad": [
                _const("container_memory_working_set_bytes", CONTAINER, 900),
                _const("container_spec_memory_limit_bytes", CONTAINER, 1000),
                _const("container_memory_working_set_bytes", POD_CGROUP, 990),
                _const("container_spec_memory_limit_bytes", POD_CGROUP, 1000),
            ],
            "healthy": [
                _const("container_memory_working_set_bytes", CONTAINER, 500),
                _const("container_spec_memory_limit_bytes", CONTAINER, 1000),
                _const("container_memory_working_set_bytes", PAUSE, 990),
                _const("container_spec_memory_limit_bytes", PAUSE, 1000),
            ],
            # No limit: cAdvisor reports 0, which is no ratio.
            "no traffic": [
                _const("container_memory_working_set_bytes", CONTAINER, 900),
                _const("container_spec_memory_limit_bytes", CONTAINER, 0),
            ],
        },
        CONTAINER,
        "warning",
    ),
    Case(
        "ContainerHighCPUUsage",
        {
            # 0.9 CPU-seconds a second against a limit of one CPU; the counter carries cAdvisor's `cpu`.
            "bad": [
                counter("container_cpu_usage_seconds_total", {**CONTAINER, "cpu": "total"}, 54),
                _const("container_spec_cpu_quota", CONTAINER, 100000),
                _const("container_spec_cpu_period", CONTAINER, 100000),
            ],
            "healthy": [
                counter("container_cpu_usage_seconds_total", {**CONTAINER, "cpu": "total"}, 12),
                _const("container_spec_cpu_quota", CONTAINER, 100000),
                _const("container_spec_cpu_period", CONTAINER, 100000),
            ],
            # No CPU limit (a service may drop it): no quota, no ratio.
            "no traffic": [
                counter("container_cpu_usage_seconds_total", {**CONTAINER, "cpu": "total"}, 54),
                _const("container_spec_cpu_period", CONTAINER, 100000),
            ],
        },
        CONTAINER,
        "warning",
    ),
]

NODE_CASES: list[Case] = [
    Case(
        "HighMemoryUsage",
        {
            "bad": [_const("node_memory_MemTotal_bytes", NODE, 100), _const("node_memory_MemAvailable_bytes", NODE, 5)],
            "healthy": [
                _const("node_memory_MemTotal_bytes", NODE, 100),
                _const("node_memory_MemAvailable_bytes", NODE, 50),
            ],
            "no traffic": [],
        },
        NODE,
        "warning",
    ),
    Case(
        "HighCPUUsage",
        {
            # Idle 6 s a minute: 90 % busy.
            "bad": [counter("node_cpu_seconds_total", {**NODE, "cpu": "0", "mode": "idle"}, 6)],
            "healthy": [counter("node_cpu_seconds_total", {**NODE, "cpu": "0", "mode": "idle"}, 54)],
            "no traffic": [],
        },
        {"instance": NODE["instance"]},
        "warning",
    ),
    Case(
        "DiskSpaceLow",
        {
            "bad": [_const("node_filesystem_avail_bytes", DISK, 5), _const("node_filesystem_size_bytes", DISK, 100)],
            "healthy": [
                _const("node_filesystem_avail_bytes", DISK, 50),
                _const("node_filesystem_size_bytes", DISK, 100),
            ],
            "no traffic": [
                _const("node_filesystem_avail_bytes", TMPFS, 5),
                _const("node_filesystem_size_bytes", TMPFS, 100),
            ],
        },
        DISK,
        "critical",
    ),
    Case(
        "DiskSpaceHigh",
        {
            "bad": [_const("node_filesystem_free_bytes", DISK, 10), _const("node_filesystem_size_bytes", DISK, 100)],
            "healthy": [
                _const("node_filesystem_free_bytes", DISK, 50),
                _const("node_filesystem_size_bytes", DISK, 100),
            ],
            "no traffic": [
                _const("node_filesystem_free_bytes", TMPFS, 10),
                _const("node_filesystem_size_bytes", TMPFS, 100),
            ],
        },
        DISK,
        "warning",
    ),
    Case(
        "KubernetesNodeNotReady",
        {
            "bad": [_const("kube_node_status_condition", {"node": "n1", "condition": "Ready", "status": "true"}, 0)],
            "healthy": [
                _const("kube_node_status_condition", {"node": "n1", "condition": "Ready", "status": "true"}, 1)
            ],
            "no traffic": [],
        },
        {"node": "n1", "condition": "Ready", "status": "true"},
        "warning",
    ),
]

ALERT_CASES: list[Case] = [
    *APP_CASES,
    *DATA_CASES,
    *KUBERNETES_CASES,
    *NODE_CASES,
    # The heartbeat: fires in every case, with no input at all too.
    Case("Watchdog", {"bad": [], "no traffic": []}, {}, "none", fires_in=("bad", "no traffic")),
]


def targets_down(down: int, of: int, minutes: int = 60) -> Series:
    """`of` api targets, `down` of them not answering."""
    return [(sel("up", target(f"api-{i}")), f"{0 if i < down else 1}x{minutes}") for i in range(of)]


# (case, input series, eval time, severities of AvailabilityErrorBudgetBurn that fire). Budget 0.5 %:
# 14.4x = 7.2 %, 6x = 3 %, 3x = 1.5 %, 1x = 0.5 %.
BURN_CASES: list[tuple[str, Series, str, tuple[str, ...]]] = [
    ("1 of 10 targets down: 20x burns, page and ticket", targets_down(1, 10), "30m", ("critical", "warning")),
    ("1 of 25 down: 8x, page over 6h and 30m only", targets_down(1, 25), "30m", ("critical", "warning")),
    ("1 of 50 down: 4x, ticket over 1d and 2h, no page", targets_down(1, 50), "30m", ("warning",)),
    ("every target up: silent", targets_down(0, 10), "30m", ()),
    ("no targets: silent", [], "30m", ()),
]
