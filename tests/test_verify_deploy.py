"""The deploy verification (scripts/verify_deploy.py) and the deploy that rolls back (scripts/deploy.py):
live objects judged, waiting and settling, the edge's health answered by a server on 127.0.0.1, and
the order of up, verify, rollback. The control plane's run is in tests/e2e/test_deploy_cluster.py."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from scripts import deploy, verify_deploy
from scripts.verify_deploy import EdgeCheck, Verdict, Workload, judge
from tests.harness import overlay, raw_stack_value, run_program, stack_config
from tests.health_server import HealthServer, health_server

API = Workload("deployments", "support-app", "api", ("ghcr.io/support-platform/api:1.5.0",))
DB = Workload("statefulsets", "support-data", "postgres", ("postgres:17",))
MIGRATION = Workload("jobs", "support-app", "api-migrations-1-5-0", ())


def deployment(**status: Any) -> dict[str, Any]:
    image = status.pop("image", API.images[0])
    base = {"observedGeneration": 4, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
    return {
        "metadata": {"generation": 4},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "api"}},
            "template": {"spec": {"containers": [{"name": "api", "image": image}]}},
        },
        "status": {**base, **status},
    }


@pytest.mark.parametrize(
    ("status", "reason", "final"),
    [
        ({}, None, False),
        ({"observedGeneration": 3}, "generation 4 not yet observed by its controller (at 3)", False),
        (
            {"updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1},
            "1/2 updated, 1/2 ready, 1/2 available",
            False,
        ),
        (
            {"replicas": 3, "updatedReplicas": 1, "readyReplicas": 2},
            "rollout not finished: 2 pod(s) of the previous release still running beside 1 new, 2/3 ready",
            False,
        ),
        (
            {"image": "ghcr.io/support-platform/api:1.4.0"},
            "runs ghcr.io/support-platform/api:1.4.0, not the ghcr.io/support-platform/api:1.5.0 the update deployed",
            False,
        ),
        (
            {
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": 'ReplicaSet "api-7f" has timed out progressing.',
                    }
                ],
                "readyReplicas": 0,
            },
            'rollout stalled: ReplicaSet "api-7f" has timed out progressing.',
            True,
        ),
    ],
    ids=["rolled-out", "generation", "half", "old-pods", "other-image", "deadline"],
)
def test_a_deployment_is_done_when_its_new_generation_is_out_and_ready(
    status: dict[str, Any], reason: str | None, final: bool
) -> None:
    assert judge(API, deployment(**status)) == Verdict(reason, final)


def test_a_statefulset_needs_its_revision_current_and_a_job_its_success() -> None:
    sts = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "postgres", "image": "postgres:17"}]}}},
        "status": {
            "observedGeneration": 2,
            "replicas": 1,
            "readyReplicas": 1,
            "updatedReplicas": 1,
            "currentRevision": "postgres-1",
            "updateRevision": "postgres-2",
        },
    }
    assert judge(DB, sts) == Verdict("revision postgres-2 not yet current (postgres-1)")
    assert (DB.label, MIGRATION.label) == ("StatefulSet support-data/postgres", "Job support-app/api-migrations-1-5-0")
    sts["status"]["currentRevision"] = "postgres-2"
    assert judge(DB, sts) == Verdict(None)
    assert judge(MIGRATION, {"status": {"active": 1}}) == Verdict("not complete (active 1)")
    assert judge(MIGRATION, {"status": {"succeeded": 1}}) == Verdict(None)
    failed = {
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ]
        }
    }
    assert judge(MIGRATION, failed) == Verdict(
        "failed: BackoffLimitExceeded Job has reached the specified backoff limit", final=True
    )


class Cluster:
    """A getter over a script of answers: each path answers its next value until the last sticks."""

    def __init__(self, answers: dict[str, list[Any]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def get(self, path: str) -> tuple[int, Any]:
        self.asked.append(path)
        script = self.answers.get(path.split("?", maxsplit=1)[0])
        if not script:
            return 404, None
        return 200, script.pop(0) if len(script) > 1 else script[0]


API_PATH = API.path("apps/v1")
PODS = "/api/v1/namespaces/support-app/pods"
HELD = {
    "items": [
        {
            "metadata": {"name": "api-7f-x"},
            "status": {
                "phase": "Running",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "ContainersNotReady",
                        "message": "readiness probe failed",
                    }
                ],
                "containerStatuses": [{"name": "api", "ready": False, "state": {"running": {"startedAt": "t"}}}],
            },
        }
    ]
}


def test_it_waits_for_a_rollout_then_holds_to_see_it_stay_ready() -> None:
    cluster = Cluster({API_PATH: [deployment(readyReplicas=1, availableReplicas=1), deployment(), deployment()]})
    slept: list[float] = []
    verdicts = verify_deploy.wait_for_workloads(cluster.get, [API], timeout=60, settle=15, sleep=slept.append)
    assert verdicts == {API: Verdict(None)}
    assert slept[-1] == 15 and len(cluster.asked) == 3


def test_a_release_that_turns_unready_while_settling_fails_with_its_pods() -> None:
    cluster = Cluster({API_PATH: [deployment(), deployment(readyReplicas=1, availableReplicas=1)], PODS: [HELD]})
    report = verify_deploy.verify(
        cluster.get, [state_of(API)], timeout=60, settle=15, edge_url=None, sleep=lambda s: None
    )
    assert not report.ok
    assert report.failures == [
        "Deployment support-app/api: 2/2 updated, 1/2 ready, 1/2 available",
        "Deployment support-app/api: pod api-7f-x Running, not ready: ContainersNotReady readiness probe failed; "
        "api not ready (running)",
    ]
    assert any("labelSelector=app.kubernetes.io%2Fname%3Dapi" in path for path in cluster.asked)


def test_a_final_failure_does_not_wait_for_the_timeout() -> None:
    stalled = deployment(conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}], readyReplicas=0)
    cluster = Cluster({API_PATH: [stalled]})
    slept: list[float] = []
    verdicts = verify_deploy.wait_for_workloads(cluster.get, [API], timeout=3600, settle=15, sleep=slept.append)
    assert verdicts[API].final and slept == []


def state_of(workload: Workload) -> dict[str, Any]:
    kind = {"deployments": "Deployment", "statefulsets": "StatefulSet", "jobs": "Job"}[workload.kind]
    api = "batch/v1" if workload.kind == "jobs" else "apps/v1"
    containers = [{"name": workload.name, "image": image} for image in workload.images]
    return {
        "type": f"kubernetes:{api}:{kind}",
        "outputs": {
            "kind": kind,
            "metadata": {"name": workload.name, "namespace": workload.namespace},
            "spec": {"template": {"spec": {"containers": containers}}},
        },
    }


# --- the edge ----------------------------------------------------------------------------------------


def program_state(stack: str, **overrides: Any) -> list[dict[str, Any]]:
    """The program's resources as the state holds them (outputs ~ the inputs it sent)."""
    config, secret_keys = stack_config(stack, overrides=overrides or None)
    run = run_program(stack, config, secret_keys)
    assert run.error is None, run.error
    return [{"type": r.type, "outputs": r.inputs} for r in run.resources]


def test_the_edge_checks_each_readiness_path_the_edge_routes_to_its_service() -> None:
    checks, notes = verify_deploy.edge_checks(program_state("staging"))
    assert checks == [EdgeCheck("support.staging.example.com", "/health", "web")]
    # /health/readiness is under `/`, web's route: through the edge it would never reach the api.
    assert notes == ["api: its readiness path /health/readiness does not reach it through the edge (route /api)"]
    ingress = overlay(raw_stack_value("staging", "edge"), {"mode": "ingress"})
    checks, _ = verify_deploy.edge_checks(program_state("staging", edge=ingress))
    assert checks == [EdgeCheck("support.staging.example.com", "/health", "web")]
    assert verify_deploy.edge_checks(program_state("dev", edge={"hosts": []})) == ([], [])


@pytest.fixture
def edge() -> Iterator[HealthServer]:
    with health_server() as served:
        yield served


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_edge_answers_through_a_server_on_loopback(edge: HealthServer) -> None:
    seen, codes, url = edge.seen, edge.codes, edge.url
    check = EdgeCheck("support.staging.example.com", "/health", "web")
    assert verify_deploy.probe_edge(check, url) == (
        True,
        f"GET {url}/health (Host support.staging.example.com) answered 200",
    )
    assert seen == [("/health", "support.staging.example.com")]
    codes["/health"] = 503
    answered, what = verify_deploy.probe_edge(check, url)
    assert answered is False and what.endswith("answered 503 Service Unavailable")
    answered, what = verify_deploy.probe_edge(check, f"http://127.0.0.1:{closed_port()}")
    assert answered is None and "not reachable from here" in what


def test_an_unhealthy_edge_fails_the_verification_and_an_unreachable_one_is_noted(edge: HealthServer) -> None:
    codes, url = edge.codes, edge.url
    resources = program_state("staging")
    workloads = verify_deploy.workloads_in(resources)
    answers = {w.path("batch/v1" if w.kind == "jobs" else "apps/v1"): [ready_object(w)] for w in workloads}
    get = Cluster(answers).get
    assert verify_deploy.verify(get, resources, 0, 0, url).ok
    codes["/health"] = 502
    report = verify_deploy.verify(get, resources, 0, 0, url)
    assert report.failures == [
        f"edge web: GET {url}/health (Host support.staging.example.com) answered 502 Bad Gateway"
    ]
    explicit = verify_deploy.verify(get, resources, 0, 0, f"http://127.0.0.1:{closed_port()}")
    assert len(explicit.failures) == 1 and "not reachable from here" in explicit.failures[0]
    # Without --edge-url the edge is https://<host>, which nothing here serves: a note, not a failure.
    implicit = verify_deploy.verify(get, resources, 0, 0, None)
    assert implicit.ok and any(
        n.startswith("edge web: GET https://support.staging.example.com/health") for n in implicit.notes
    )


def ready_object(workload: Workload) -> dict[str, Any]:
    if workload.kind == "jobs":
        return {"status": {"succeeded": 1}}
    containers = [{"name": workload.name, "image": image} for image in workload.images]
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}},
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "currentRevision": "r",
            "updateRevision": "r",
        },
    }


def test_every_workload_of_a_stack_is_verified() -> None:
    workloads = verify_deploy.workloads_in(program_state("staging"))
    kinds = {(w.kind, w.name) for w in workloads}
    assert {
        ("deployments", "api"),
        ("deployments", "web"),
        ("statefulsets", "postgres"),
        ("statefulsets", "prometheus"),
    } <= kinds
    assert any(kind == "jobs" and name.startswith("api-migrations-") for kind, name in kinds)


# --- up, verify, roll back ---------------------------------------------------------------------------

HISTORY = [
    {"version": 1, "kind": "update", "result": "succeeded", "config": {}},
    {
        "version": 2,
        "kind": "update",
        "result": "succeeded",
        "config": {"support-platform:app": {"objectValue": {"services": {"api": {"image": "ghcr.io/x/api:1.4.0"}}}}},
    },
    {"version": 3, "kind": "refresh", "result": "succeeded", "config": {}},
    {"version": 4, "kind": "update", "result": "failed", "config": {}},
]


class Steps:
    """The deploy's steps, faked: `failing` maps a script to the calls (1, 2, ...) of it that fail."""

    def __init__(self, failing: dict[str, set[int]]) -> None:
        self.failing = failing
        self.ran: list[str] = []
        self.calls: dict[str, int] = {}

    def __call__(self, command: Sequence[str]) -> deploy.Step:
        start = next(i for i, part in enumerate(command) if part.endswith((".py", ".sh")))
        script = command[start].rsplit("/", 1)[-1]
        self.calls[script] = self.calls.get(script, 0) + 1
        self.ran.append(" ".join([script, *command[start + 1 :]]))
        code = 1 if self.calls[script] in self.failing.get(script, set()) else 0
        return deploy.Step(deploy.step_name(command), code, f"output of {script} call {self.calls[script]}")


def test_a_verified_deploy_is_done() -> None:
    steps = Steps({})
    code, outcome = deploy.deploy("staging", "deploy abc", ["--timeout", "600"], steps, lambda s: HISTORY)
    assert code == 0 and outcome.verdict == "deployed and verified"
    assert steps.ran == ["stack.sh up staging --message deploy abc", "verify_deploy.py --stack staging --timeout 600"]


def test_a_release_that_fails_verification_is_rolled_back_to_the_last_succeeded_update() -> None:
    steps = Steps({"verify_deploy.py": {1}})
    code, outcome = deploy.deploy("staging", "deploy abc", ["--timeout", "600"], steps, lambda s: HISTORY)
    assert code == 1
    assert steps.ran[2] == "rollback.py --stack staging --to 2 --yes"
    assert steps.ran[3] == "verify_deploy.py --stack staging --timeout 600"
    assert outcome.verdict == "FAILED; rolled back to version 2 (verified)"
    summary = outcome.markdown()
    assert "- `verify_deploy.py --stack staging`: failed (exit 1)" in summary
    assert "output of verify_deploy.py call 1" in summary
    assert "Restored version 2 (api=api:1.4.0)" in summary and "Pulumi.staging.yaml" in summary


def test_a_failed_up_is_looked_at_once_and_rolled_back() -> None:
    steps = Steps({"stack.sh": {1}})
    code, _ = deploy.deploy("staging", "m", ["--timeout", "600", "--settle", "30"], steps, lambda s: HISTORY)
    assert code == 1
    assert steps.ran[1] == "verify_deploy.py --stack staging --timeout 600 --settle 30 --timeout 0 --settle 0"
    assert steps.ran[2] == "rollback.py --stack staging --to 2 --yes"


def test_without_an_earlier_success_nothing_is_rolled_back_and_a_failed_rollback_says_so() -> None:
    steps = Steps({"stack.sh": {1}})
    code, outcome = deploy.deploy("staging", "m", [], steps, lambda s: [])
    assert code == 1 and len(steps.ran) == 2 and "nothing was rolled back" in outcome.verdict
    steps = Steps({"verify_deploy.py": {1}, "rollback.py": {1}})
    code, outcome = deploy.deploy("staging", "m", [], steps, lambda s: HISTORY)
    assert code == 3 and "the rollback to version 2 failed too" in outcome.verdict
