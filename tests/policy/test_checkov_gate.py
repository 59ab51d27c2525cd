"""The checkov gate's own logic (scripts/checkov_gate.py) and its waiver file, without running checkov:
`make checkov` runs the real thing on the rendered stacks."""

from __future__ import annotations

import fnmatch
import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.checkov_gate import (
    BLANK,
    STACKS,
    WAIVERS,
    Finding,
    Waiver,
    WaiverError,
    findings,
    judge,
    load_waivers,
    manifest,
)
from tests.harness import run_program


def waiver(check: str = "CKV_K8S_35", *resources: str, stacks: tuple[str, ...] = STACKS) -> Waiver:
    return Waiver(check, resources or ("Deployment.support-app.api",), stacks, "a reason of enough words to count")


def finding(check: str = "CKV_K8S_35", resource: str = "Deployment.support-app.api", stack: str = "dev") -> Finding:
    return Finding(stack, check, resource, "a check", "/api.yaml")


def test_a_finding_passes_only_with_a_waiver_for_its_check_resource_and_stack() -> None:
    waivers = [waiver(), waiver("CKV_K8S_43", "Job.support-app.api-migrations-*", stacks=("dev",))]
    verdict = judge(
        [
            finding(),
            finding("CKV_K8S_43", "Job.support-app.api-migrations-c6e6443a7f"),
            finding("CKV_K8S_43", "Job.support-app.api-migrations-c6e6443a7f", stack="staging"),  # not waived there
            finding("CKV_K8S_38"),  # another check
        ],
        waivers,
        ["dev", "staging"],
    )
    assert [(f.check, f.stack) for f in verdict.unwaived] == [("CKV_K8S_43", "staging"), ("CKV_K8S_38", "dev")]
    assert len(verdict.waived) == 2
    # CKV_K8S_35 on the api is waived for staging too, where nothing needed it: stale.
    assert [(w.check, stack) for w, stack, _ in verdict.stale] == [("CKV_K8S_35", "staging")]
    assert not verdict.ok


def test_stale_waivers_fail_the_gate_and_unchecked_stacks_do_not_count() -> None:
    verdict = judge([finding()], [waiver()], ["dev"])
    assert verdict.ok and verdict.stale == []
    verdict = judge([], [waiver()], ["dev"])
    assert not verdict.ok and [stack for _, stack, _ in verdict.stale] == ["dev"]


def test_each_pattern_of_a_waiver_must_be_needed() -> None:
    both = waiver("CKV_K8S_35", "Deployment.support-app.api", "StatefulSet.support-data.redis", stacks=("dev",))
    verdict = judge([finding()], [both], ["dev"])
    assert [pattern for _, _, pattern in verdict.stale] == ["StatefulSet.support-data.redis"]


def test_checkov_reports_are_read_for_failed_checks() -> None:
    report: dict[str, Any] = {
        "check_type": "kubernetes",
        "results": {
            "passed_checks": [{"check_id": "CKV_K8S_8", "resource": "Deployment.support-app.api"}],
            "failed_checks": [
                {
                    "check_id": "CKV_K8S_35",
                    "check_name": "Prefer using secrets as files over secrets as environment variables",
                    "resource": "StatefulSet.support-data.redis",
                    "file_path": "/redis-statefulset.yaml",
                }
            ],
        },
        "summary": {"passed": 1, "failed": 1, "resource_count": 2},
    }
    assert findings("dev", report) == [
        Finding(
            "dev",
            "CKV_K8S_35",
            "StatefulSet.support-data.redis",
            "Prefer using secrets as files over secrets as environment variables",
            "/redis-statefulset.yaml",
        )
    ]
    assert findings("dev", {"summary": {}}) == []


def test_manifests_carry_integers_and_no_secret_values() -> None:
    inputs = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "stringData": {"password": "hunter2-hunter2"},
        "spec": {"replicas": 3.0, "ratio": 0.5},
    }
    rendered = manifest(inputs)
    assert rendered["stringData"] == {"password": BLANK}
    assert rendered["spec"] == {"replicas": 3, "ratio": 0.5} and isinstance(rendered["spec"]["replicas"], int)
    assert inputs["stringData"] == {"password": "hunter2-hunter2"}  # the recorded inputs are left alone


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"check": "CKV_K8S_35", "resources": ["Deployment.a.b"], "stacks": ["dev"]}, "needs exactly"),
        ({"check": "CKV_K8S_35", "resources": ["Deployment.a.b"], "stacks": ["dev"], "reason": "legacy"}, "reason"),
        ({"check": "CKV_K8S_35", "resources": ["Deployment.a.b"], "stacks": ["qa"], "reason": "x" * 30}, "stacks"),
        ({"check": "CKV_K8S_35", "resources": ["api"], "stacks": ["dev"], "reason": "x" * 30}, "resource ids"),
        ({"check": "CKV_AWS_1", "resources": ["Deployment.a.b"], "stacks": ["dev"], "reason": "x" * 30}, "check id"),
    ],
)
def test_waiver_mistakes_are_refused(tmp_path: Path, entry: dict[str, Any], problem: str) -> None:
    path = tmp_path / "waivers.yaml"
    path.write_text(yaml.safe_dump({"waivers": [entry]}))
    with pytest.raises(WaiverError, match=problem):
        load_waivers(path)


# --- the real waiver file ---------------------------------------------------------------------


@functools.cache
def rendered_ids(stack: str) -> frozenset[str]:
    """checkov's resource ids (Kind.namespace.name) of what the program renders for `stack`."""
    run = run_program(stack)
    assert run.error is None, run.error
    ids = set()
    for resource in run.resources:
        meta = resource.inputs.get("metadata", {})
        if resource.type.startswith("kubernetes:") and "kind" in resource.inputs:
            ids.add(f"{resource.inputs['kind']}.{meta.get('namespace', 'default')}.{meta.get('name')}")
    return frozenset(ids)


def test_every_waiver_names_objects_the_stacks_render() -> None:
    waivers = load_waivers(WAIVERS)
    assert waivers, "the waiver file is read"
    for entry in waivers:
        for stack in entry.stacks:
            for pattern in entry.resources:
                matches = [i for i in rendered_ids(stack) if fnmatch.fnmatchcase(i, pattern)]
                assert matches, f"{entry.check} {pattern}: nothing of that name in {stack}"


def test_what_checkov_could_not_be_met_for_is_the_whole_list() -> None:
    """PostgreSQL and Grafana read their passwords from files: no waiver may cover them again."""
    waived = {p for entry in load_waivers(WAIVERS) for p in entry.resources}
    assert not any(fnmatch.fnmatchcase("StatefulSet.support-data.postgres", p) for p in waived)
    assert not any(fnmatch.fnmatchcase("Deployment.support-monitoring.grafana", p) for p in waived)
