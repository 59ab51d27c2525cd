"""The capacity delta of a plan, exact against figures computed by hand, and the growth caps."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from scripts.gate import capacity, capacity_report, cron, quantity, settings
from scripts.gate.plan import UNKNOWN, parse_steps
from tests.plan_fixtures import claim, container, cronjob, deployment, hpa, job, job_spec, statefulset, step

GI, MI = 2**30, 2**20


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("2", Fraction(2)),
        (2.0, Fraction(2)),
        ("0.25", Fraction(1, 4)),
        ("1.5Gi", Fraction(3 * GI, 2)),
        ("512Mi", Fraction(512 * MI)),
        ("1G", Fraction(10**9)),
        ("100k", Fraction(100_000)),
        ("1e3", Fraction(1000)),
        ("250u", Fraction(1, 4000)),
    ],
)
def test_quantities_parse_exactly(text: Any, value: Fraction) -> None:
    assert quantity.parse(text) == value


@pytest.mark.parametrize("bad", ["", "1.5.0", "12 Gi", "Gi", "1gi", True, None, [1]])
def test_what_is_not_a_quantity_is_refused(bad: Any) -> None:
    with pytest.raises(quantity.QuantityError):
        quantity.parse(bad)


@pytest.mark.parametrize(
    ("measure", "value", "text"),
    [
        ("cpu", Fraction(1, 2), "0.5"),
        ("cpu", Fraction(47, 100), "0.47"),
        ("cpu", Fraction(12), "12"),
        ("memory", Fraction(3 * GI, 2), "1.5Gi"),
        ("memory", Fraction(1025 * MI), "1025Mi"),
        ("memory", Fraction(256 * MI), "256Mi"),
        ("memory", Fraction(-512 * MI), "-512Mi"),
        ("memory", Fraction(0), "0"),
    ],
)
def test_quantities_print_without_rounding(measure: str, value: Fraction, text: str) -> None:
    assert getattr(quantity, measure)(value) == text


@pytest.mark.parametrize(
    ("schedule", "minutes"),
    [
        ("*/15 * * * *", 15),
        ("0,45 * * * *", 15),
        ("0 3 * * *", 24 * 60),
        ("@hourly", 60),
        ("0 */6 * * *", 6 * 60),
        ("30 2 * * mon-fri", 24 * 60),
        ("5 4 * * sun", 7 * 24 * 60),
        ("0 0 1 * *", 28 * 24 * 60),  # 1 February to 1 March
        ("0 0 29 2 *", 4 * 365 * 24 * 60 + 24 * 60),  # leap days, four years apart
    ],
)
def test_the_shortest_interval_of_a_schedule(schedule: str, minutes: int) -> None:
    assert cron.min_interval_seconds(schedule) == minutes * 60


@pytest.mark.parametrize("schedule", ["* * * *", "61 * * * *", "0 0 31 2 *", "*/0 * * * *", "0 0 * * funday"])
def test_a_schedule_cron_would_refuse_is_refused(schedule: str) -> None:
    with pytest.raises(cron.ScheduleError):
        cron.min_interval_seconds(schedule)


API_BEFORE = container("api", {"cpu": "500m", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"})
API_AFTER = container("api", {"cpu": "750m", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"})
WEB = deployment(
    "web",
    "support-app",
    container("web", {"cpu": "50m", "memory": "64Mi"}, {"cpu": "250m", "memory": "128Mi"}),
    replicas=2,
)
POSTGRES = statefulset(
    "postgres", "support-data", 1, "20Gi",
    container("postgres", {"cpu": "250m", "memory": "512Mi"}, {"cpu": "2", "memory": "1Gi"}),
    container("exporter", {"cpu": "20m", "memory": "32Mi"}, {"cpu": "200m", "memory": "128Mi"}),
)  # fmt: skip
BACKUP = cronjob(
    "backup", "support-data", "0 3 * * *",
    job_spec(container("backup", {"cpu": "100m", "memory": "128Mi"}, {"cpu": "1", "memory": "512Mi"})),
    concurrencyPolicy="Forbid",
)  # fmt: skip
MIGRATE = job(
    "migrate", "support-app", container("migrate", {"cpu": "100m", "memory": "256Mi"}, {"cpu": "1", "memory": "1Gi"}),
    parallelism=2, completions=1,
)  # fmt: skip

# What a reviewer of this plan computes by hand (the numbers in the comments):
#   api       3-10 replicas x (0.5 CPU, 2 CPU, 1Gi, 2Gi)  ->  4-10 x (0.75 CPU, 2 CPU, 1Gi, 2Gi)
#   web       2 x (0.05, 0.25, 64Mi, 128Mi)                   unchanged
#   postgres  1 x (0.27, 2.2, 544Mi, 1152Mi), 20Gi claim      unchanged
#   backup    1 run x (0.1, 1, 128Mi, 512Mi) (Forbid)          unchanged
#   migrate   created: min(parallelism 2, completions 1) = 1 pod x (0.1, 1, 256Mi, 1Gi)
#   backups claim 20Gi -> 30Gi
PLAN = {
    "steps": [
        step("update", "apps/v1:Deployment", "api-deployment",
             deployment("api", "support-app", API_BEFORE), deployment("api", "support-app", API_AFTER),
             detailedDiff={"spec.template.spec.containers[0].resources.requests.cpu": {"kind": "update"}}),
        step("update", "autoscaling/v2:HorizontalPodAutoscaler", "api-hpa",
             hpa("api", "support-app", 3, 10), hpa("api", "support-app", 4, 10)),
        step("same", "apps/v1:Deployment", "web-deployment", WEB, WEB),
        step("same", "apps/v1:StatefulSet", "postgres-statefulset", POSTGRES, POSTGRES),
        step("same", "batch/v1:CronJob", "backup-cronjob", BACKUP, BACKUP),
        step("create", "batch/v1:Job", "migrate-job", None, MIGRATE),
        step("update", "core/v1:PersistentVolumeClaim", "backups",
             claim("backups", "support-data", "20Gi"), claim("backups", "support-data", "30Gi")),
    ]
}  # fmt: skip


def test_the_totals_match_the_hand_computed_figures() -> None:
    before, after = capacity.before_and_after(parse_steps(PLAN))
    assert capacity_report.totals(before, after)[2:] == [
        # at min: 1.5 + 0.1 + 0.27 + 0.1 -> 3 + 0.1 + 0.27 + 0.1 + 0.1; at max: api x 10
        "| CPU requests (cores) | 1.97 → 3.57 (+1.6) | 5.47 → 8.07 (+2.6) |",
        "| CPU limits (cores) | 9.7 → 12.7 (+3) | 23.7 → 24.7 (+1) |",
        "| memory requests | 3872Mi → 5152Mi (+1.25Gi) | 11040Mi → 11296Mi (+256Mi) |",
        "| memory limits | 8064Mi → 11136Mi (+3Gi) | 22400Mi → 23424Mi (+1Gi) |",
        "| persistent storage | 40Gi → 50Gi (+10Gi) | 40Gi → 50Gi (+10Gi) |",
    ]


def test_only_changed_workloads_get_a_row_largest_cpu_change_first() -> None:
    before, after = capacity.before_and_after(parse_steps(PLAN))
    header, rows = capacity_report.workload_rows(before, after)
    assert header.startswith("| workload | replicas | CPU requests |")
    assert rows == [
        "| `Deployment support-app/api` | 3-10 → 4-10 | 1.5 → 3 (+1.5) at min<br>5 → 7.5 (+2.5) at max"
        " | 6 → 8 (+2) at min<br>20 → 20 at max | 3Gi → 4Gi (+1Gi) at min<br>10Gi → 10Gi at max"
        " | 6Gi → 8Gi (+2Gi) at min<br>20Gi → 20Gi at max |  |",
        "| `Job support-app/migrate` | — → 1 | 0 → 0.1 (+0.1) | 0 → 1 (+1) | 0 → 256Mi (+256Mi) | 0 → 1Gi (+1Gi) |  |",
        "| `PersistentVolumeClaim support-data/backups` |  |  |  |  |  | 20Gi → 30Gi (+10Gi) |",
    ]


def test_growth_over_a_cap_is_named_with_its_setting() -> None:
    before, after = capacity.before_and_after(parse_steps(PLAN))
    limits = {
        "maxCpuIncrease": Fraction(2),
        "maxMemoryIncrease": Fraction(4 * GI),
        "maxStorageIncrease": Fraction(10 * GI),
    }
    (over,) = capacity_report.growth_over_limits(before, after, limits)
    assert (over.setting, over.increase) == ("maxCpuIncrease", Fraction(13, 5))
    assert over.describe() == "CPU requests at the HPA maximum grow by +2.6, over `maxCpuIncrease` (2)"
    # Exactly at the cap is within it; a cap left out is no cap.
    assert capacity_report.growth_over_limits(before, after, {"maxCpuIncrease": Fraction(13, 5)}) == []
    assert capacity_report.growth_over_limits(before, after, {}) == []


def test_a_pod_reserves_its_sidecars_and_its_largest_init_container() -> None:
    pod = {
        "initContainers": [
            {**container("proxy", {"cpu": "100m", "memory": "64Mi"}, None), "restartPolicy": "Always"},
            container("setup", {"cpu": "1", "memory": "64Mi"}, {"cpu": "1", "memory": "128Mi"}),
        ],
        # No requests: Kubernetes takes the limits as requests.
        "containers": [container("app", None, {"cpu": "500m", "memory": "256Mi"})],
        "overhead": {"cpu": "10m", "memory": "16Mi"},
    }
    usage = capacity.pod_usage(pod, capacity._Notes())
    # requests: max(app 0.5 + proxy 0.1, setup 1 + proxy 0.1) + 0.01; max(256 + 64, 64 + 64) + 16 Mi
    assert usage.cpu_requests == Fraction(111, 100)
    assert usage.memory_requests == 336 * MI
    # The sidecar has no limits: the pod's limits are unbounded.
    assert usage.cpu_limits is None and usage.memory_limits is None
    assert capacity_report.amount("cpu_limits", usage.cpu_limits) == "unbounded"


@pytest.mark.parametrize(
    ("fields", "runs", "note"),
    [
        ({"concurrencyPolicy": "Forbid"}, 1, None),
        ({"concurrencyPolicy": "Replace"}, 1, None),
        ({"suspend": True}, 0, None),
        # Allow (the default): a run every 15 minutes, each allowed an hour, so four at once.
        ({}, 4, None),
        ({"concurrencyPolicy": "Allow"}, 4, None),
    ],
)
def test_a_cronjob_counts_the_runs_its_schedule_lets_overlap(
    fields: dict[str, Any], runs: int, note: str | None
) -> None:
    spec = cronjob(
        "sync", "ns", "*/15 * * * *", job_spec(container("c", {"cpu": "1"}, None), activeDeadlineSeconds=3600), **fields
    )
    notes = capacity._Notes()
    assert capacity.cronjob_runs(spec["spec"], notes) == runs
    assert notes.notes == []


def test_an_unbounded_cronjob_counts_one_run_and_says_so() -> None:
    spec = cronjob("sync", "ns", "*/15 * * * *", job_spec(container("c", {"cpu": "1"}, None)))
    workload = capacity.workload("kubernetes:batch/v1:CronJob", spec, {}, "sync-cronjob")
    assert workload.replicas == (1, 1)
    assert "without activeDeadlineSeconds" in workload.notes[0]


def test_a_statefulset_under_an_hpa_scales_its_claims_too() -> None:
    sts = statefulset(
        "chroma", "data", 1, "10Gi", container("chroma", {"cpu": "250m", "memory": "1Gi"}, {"memory": "2Gi"})
    )
    result = capacity.capacity(
        [
            ("u1", "kubernetes:apps/v1:StatefulSet", sts),
            ("u2", "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", hpa("chroma", "data", 2, 3, "StatefulSet")),
        ]
    )
    assert result.storage(0) == 20 * GI and result.storage(1) == 30 * GI
    assert result.total(1).cpu_requests == Fraction(3, 4)
    assert result.total(1).cpu_limits is None  # no CPU limit: unbounded


def test_an_hpa_in_another_namespace_does_not_scale_the_workload() -> None:
    result = capacity.capacity(
        [
            (
                "u1",
                "kubernetes:apps/v1:Deployment",
                deployment("api", "a", container("api", {"cpu": "1"}, {"cpu": "1"})),
            ),
            ("u2", "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", hpa("api", "b", 5, 9)),
        ]
    )
    assert result.workloads["u1"].replicas == (1, 1)


def test_values_unknown_at_preview_are_counted_as_zero_and_noted() -> None:
    api = deployment("api", "a", container("api", {"cpu": UNKNOWN, "memory": "1Gi"}, {"memory": "1Gi"}))
    api["spec"]["replicas"] = UNKNOWN
    workload = capacity.workload("kubernetes:apps/v1:Deployment", api, {}, "api-deployment")
    assert workload.pod.cpu_requests == 0 and workload.replicas == (1, 1)
    assert [n.split(" is ")[0] for n in workload.notes] == [
        "container api requests.cpu",
        "replicas '04da6b54-80e4-46f7-96ec-b56ff0331ba9'",
    ]


def test_the_gate_settings_file_names_each_bad_entry_and_its_fix(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(
        'stacks:\n  production:\n    maxCpuIncrease: "two"\n    maxCpuIncrese: "2"\n    maxMemoryIncrease: -1Gi\n'
    )
    with pytest.raises(settings.SettingsError) as error:
        settings.growth_limits("production", path)
    message = str(error.value)
    assert "stacks.production.maxCpuIncrease: 'two' is not a quantity" in message
    assert "stacks.production.maxCpuIncrese: unknown setting; use one of maxCpuIncrease" in message
    assert "stacks.production.maxMemoryIncrease: a cap cannot be negative" in message
    assert settings.growth_limits("staging", path) == {}


def test_the_committed_gate_settings_are_valid() -> None:
    for stack in ("staging", "production"):
        assert set(settings.growth_limits(stack)) == {"maxCpuIncrease", "maxMemoryIncrease", "maxStorageIncrease"}
