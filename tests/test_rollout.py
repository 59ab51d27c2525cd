"""How long `up` waits for a Deployment (components/rollout.py), and that every app Deployment gets it."""

from __future__ import annotations

import pytest

from components.app.rollout import START_ALLOWANCE_SECONDS, rollout_timeout_seconds
from tests.harness import STACKS, run_program, stack_config
from tests.test_preflight import settings_of


def test_the_bound_is_the_probe_budgets_per_pod_times_the_pods_the_rollout_may_replace() -> None:
    api = settings_of("staging").app.services["api"]
    # staging's api: startup 2 s x 60, readiness 5 s x 3; autoscaled up to 4 pods.
    assert rollout_timeout_seconds(api) == 4 * (START_ALLOWANCE_SECONDS + 120 + 15)
    single = api.model_copy(
        update={"autoscaling": api.autoscaling.model_copy(update={"enabled": False}), "replicas": 1}
    )
    assert rollout_timeout_seconds(single) == START_ALLOWANCE_SECONDS + 120 + 15


@pytest.mark.parametrize("stack", STACKS)
def test_every_app_deployment_waits_its_own_bound(stack: str) -> None:
    run = run_program(stack)
    assert run.error is None, run.error
    settings = settings_of(stack)
    deployments = [
        r
        for r in run.resources
        if r.type == "kubernetes:apps/v1:Deployment"
        and r.name.endswith("-deployment")
        and r.inputs["metadata"]["namespace"] == settings.namespaces.app
    ]
    assert {d.name for d in deployments} == {f"{n}-deployment" for n in settings.app.enabled_services()}
    for deployment in deployments:
        bound = f"{rollout_timeout_seconds(settings.app.services[deployment.name.removesuffix('-deployment')])}s"
        assert deployment.custom_timeouts == {"create": bound, "update": bound}, deployment.name


def test_release_jobs_are_deleted_before_their_replacement() -> None:
    """A rollback through a failed release returns to an earlier Job's name; a replacement created first
    would be deleted with the original the failed update left (seen on the control plane)."""
    config, secret_keys = stack_config("production")
    run = run_program("production", config, secret_keys)
    assert run.error is None, run.error
    jobs = [r for r in run.resources if r.type == "kubernetes:batch/v1:Job"]
    assert {j.name for j in jobs} == {"api-migration-job", "api-migration-backup"}
    assert all(j.delete_before_replace for j in jobs)
