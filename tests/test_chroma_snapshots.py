"""Chroma's CSI VolumeSnapshots under mocks: nothing unless a VolumeSnapshotClass is named; with one, a
CronJob runs components/data/files/chroma-snapshot.sh with a token limited to VolumeSnapshots in the
data namespace and egress to the API server only. tests/e2e/test_cluster.py runs the script itself
against a real API server."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from components.config import DataSettings
from components.labels import NEEDS_KUBERNETES_API
from tests.harness import ROOT, STACKS, ProgramRun, stack_config
from tests.policy.runner import format_violations, run_pack
from tests.test_data_tier import (
    DATA,
    EXTERNAL_CHROMA,
    EXTERNAL_SECRETS,
    app_with,
    containers,
    env_of,
    find,
    in_namespace,
    number,
    obj,
    pod_of,
    run_data,
    stack_run,
)

SCRIPT = Path(ROOT, "components", "data", "files", "chroma-snapshot.sh")
CLASS = "csi-snapshots"
DEFAULTS = DataSettings().chroma.snapshots
NAME = "chroma-snapshot"
SNAPSHOTS = {"volumeSnapshotClass": CLASS}


# name -> (data.chroma overrides besides snapshots, app overrides, secret config)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any] | None, dict[str, str]]] = {
    "default": ({}, None, {}),
    "tuned": ({"snapshots": {**SNAPSHOTS, "schedule": "5 1 * * 0", "keep": 3, "timeZone": "Europe/Berlin"}}, None, {}),
    "disabled": (
        {"mode": "disabled"},
        {"services": {"api": {"connectsTo": ["postgres", "redis", "llm"], "secretEnv": {"CHROMA_TOKEN": None}}}},
        {},
    ),
    "external": (
        {"mode": "external", "external": EXTERNAL_CHROMA},
        None,
        {"chromaToken": EXTERNAL_SECRETS["chromaToken"]},
    ),
}


@functools.cache
def with_snapshots(stack: str, variant: str = "default") -> ProgramRun:
    chroma, app, secrets = VARIANTS[variant]
    overrides: dict[str, Any] = {"data": {"chroma": {"snapshots": SNAPSHOTS, **chroma}}}
    if app is not None:
        overrides["app"] = app_with(stack, app)
    config, secret_keys = stack_config(stack, overrides=overrides, secrets=secrets)
    result, _ = run_data(stack, config, secret_keys)
    assert result.error is None, result.error
    return result


def snapshot_objects(run: ProgramRun) -> list[tuple[str, str]]:
    return sorted(
        (r.kind, r.inputs["metadata"]["name"])
        for r in in_namespace(run, DATA)
        if r.inputs["metadata"]["name"].startswith(NAME)
    )


EXPECTED = [
    ("ConfigMap", f"{NAME}-script"),
    ("CronJob", NAME),
    ("NetworkPolicy", NAME),
    ("Role", NAME),
    ("RoleBinding", NAME),
    ("ServiceAccount", NAME),
]


@pytest.mark.parametrize("stack", STACKS)
def test_no_snapshots_without_a_class(stack: str) -> None:
    assert DEFAULTS.volume_snapshot_class is None
    run = stack_run(stack)
    assert snapshot_objects(run) == []
    assert find(run, "CronJob", NAME) == []


@pytest.mark.parametrize("stack", STACKS)
def test_a_class_turns_on_the_cronjob_and_its_kit(stack: str) -> None:
    assert snapshot_objects(with_snapshots(stack)) == EXPECTED


def test_the_cronjob_runs_one_bounded_job_at_a_time_on_the_schedule() -> None:
    cron = obj(with_snapshots("dev"), "CronJob", NAME)
    spec = cron.inputs["spec"]
    assert spec["schedule"] == DEFAULTS.schedule == "47 3 * * *"
    assert spec["timeZone"] == DEFAULTS.time_zone == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert number(spec["successfulJobsHistoryLimit"]) == 3 and number(spec["failedJobsHistoryLimit"]) == 3
    job = spec["jobTemplate"]["spec"]
    assert number(job["backoffLimit"]) == 1
    # Longer than the script's own wait, so the script's loud failure is what the Job reports.
    assert number(job["activeDeadlineSeconds"]) > DEFAULTS.wait_seconds


def test_schedule_keep_and_image_come_from_settings() -> None:
    cron = obj(with_snapshots("dev", "tuned"), "CronJob", NAME)
    assert cron.get("spec.schedule") == "5 1 * * 0"
    assert cron.get("spec.timeZone") == "Europe/Berlin"
    assert env_of(containers(cron)["snapshot"])["KEEP"]["value"] == "3"


def test_the_pod_is_hardened_and_runs_the_script_with_its_env() -> None:
    cron = obj(with_snapshots("dev"), "CronJob", NAME)
    pod = pod_of(cron)
    assert pod["serviceAccountName"] == NAME
    assert pod["automountServiceAccountToken"] is True
    assert pod["enableServiceLinks"] is False and pod["restartPolicy"] == "Never"
    assert pod["priorityClassName"] == f"{DATA}-stores"
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["image"] == DEFAULTS.image and "@sha256:" in DEFAULTS.image
    assert container["command"] == ["/bin/sh", "/opt/support-platform/chroma-snapshot.sh"]
    ctx = container["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 10001
    assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
    assert ctx["privileged"] is False and ctx["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    env = env_of(container)
    assert env["NAMESPACE"] == {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    assert env["CLAIM"]["value"] == "data-chroma-0"
    assert env["CLASS"]["value"] == CLASS
    assert env["KEEP"]["value"] == str(DEFAULTS.keep) == "7"
    assert env["WAIT_SECONDS"]["value"] == str(DEFAULTS.wait_seconds)
    assert env["HOME"]["value"] == "/tmp"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert set(mounts) == {"/opt/support-platform", "/tmp"}
    assert volumes[mounts["/tmp"]["name"]] == {"name": "tmp", "emptyDir": {}}
    scripts = mounts["/opt/support-platform"]
    assert scripts["readOnly"] is True
    assert volumes[scripts["name"]]["configMap"] == {"name": f"{NAME}-script", "defaultMode": 0o555}


def test_the_script_configmap_is_the_file_byte_for_byte() -> None:
    data = obj(with_snapshots("dev"), "ConfigMap", f"{NAME}-script").inputs["data"]
    assert data == {"chroma-snapshot.sh": SCRIPT.read_bytes().decode()}


def test_the_token_is_declared_and_limited_to_volumesnapshots_in_the_namespace() -> None:
    run = with_snapshots("dev")
    account = obj(run, "ServiceAccount", NAME).inputs
    assert account["automountServiceAccountToken"] is True
    assert "VolumeSnapshots" in account["metadata"]["annotations"][NEEDS_KUBERNETES_API]
    assert obj(run, "CronJob", NAME).inputs["metadata"]["annotations"][NEEDS_KUBERNETES_API]
    role = obj(run, "Role", NAME).inputs
    assert role["rules"] == [
        {
            "apiGroups": ["snapshot.storage.k8s.io"],
            "resources": ["volumesnapshots"],
            "verbs": ["create", "delete", "get", "list"],
        }
    ]
    binding = obj(run, "RoleBinding", NAME).inputs
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": DATA}]
    # Namespaced only: nothing cluster-wide is granted to it.
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        assert not [r for r in run.k8s(kind) if NAME in r.inputs["metadata"]["name"]]


def test_the_pods_take_no_traffic_and_reach_only_the_api_server() -> None:
    run = with_snapshots("dev")
    spec = obj(run, "NetworkPolicy", NAME).inputs["spec"]
    pod_labels = obj(run, "CronJob", NAME).inputs["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == NAME
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    # The store's own policy does not select the snapshot pods (and admits none of them).
    chroma = obj(run, "NetworkPolicy", "chroma").inputs["spec"]["podSelector"]["matchLabels"]
    assert not chroma.items() <= pod_labels.items()
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec.get("ingress", []) == []
    (rule,) = spec["egress"]
    assert rule["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    assert sorted(number(p["port"]) for p in rule["ports"]) == [443, 6443]


def test_the_egress_follows_the_api_server_cidr() -> None:
    overrides = {"data": {"chroma": {"snapshots": SNAPSHOTS}}, "monitoring": {"apiServerCidr": "10.0.0.1/32"}}
    config, secret_keys = stack_config("dev", overrides=overrides)
    run, _ = run_data("dev", config, secret_keys)
    assert run.error is None, run.error
    (rule,) = obj(run, "NetworkPolicy", NAME).inputs["spec"]["egress"]
    assert rule["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]


@pytest.mark.parametrize("stack", STACKS)
def test_the_policy_pack_passes_with_snapshots(stack: str) -> None:
    violations = run_pack(with_snapshots(stack).resources, stack)
    assert violations == [], format_violations(violations)


@pytest.mark.parametrize("variant", ["disabled", "external"])
def test_no_snapshots_of_a_chroma_that_is_not_in_the_cluster(variant: str) -> None:
    run = with_snapshots("dev", variant)
    assert snapshot_objects(run) == []
    assert find(run, "CronJob", NAME) == []
