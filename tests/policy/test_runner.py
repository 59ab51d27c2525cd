"""The runner end to end: the engine's own analyzer servicer, each stack's config file,
enforcement levels, settings, exemptions and unknown values."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from . import runner
from .pack_config import STACKS, read_config_file
from .platform_records import find, mutable, platform
from .runner import Record, Violation, format_violations, mandatory, run_pack


def only(violations: list[Violation], policy: str) -> list[Violation]:
    return [v for v in violations if v.policy == policy]


@pytest.mark.parametrize("stack", STACKS)
def test_compliant_platform_is_clean_in_every_stack(stack: str) -> None:
    violations = run_pack(platform(stack), stack)
    assert violations == [], format_violations(violations)


def test_records_are_passed_as_the_engine_passes_them() -> None:
    struct = runner._struct({"spec": {"replicas": 3, "ports": [{"port": 80}]}})
    plain = json_format.MessageToDict(struct)
    assert plain["spec"]["replicas"] == 3.0 and isinstance(plain["spec"]["replicas"], float)
    with pytest.raises(TypeError, match=r"spec\.when"):
        runner._struct({"spec": {"when": object()}})


@pytest.mark.parametrize("stack", STACKS)
def test_missing_provider_means_the_default_provider(stack: str) -> None:
    records = mutable(platform(stack))
    find(records, "api").provider = None
    violations = only(run_pack(records, stack), "explicit-kubernetes-provider")
    assert [(v.resource, v.level) for v in violations] == [("api", "mandatory")]
    assert "pulumi:providers:kubernetes::default_4_25_0" in violations[0].message
    assert violations[0].urn == find(records, "api").urn


def _api_container(records: list[Record]) -> dict[str, Any]:
    container: dict[str, Any] = find(records, "api").inputs["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize(("stack", "level"), [("dev", None), ("staging", None), ("production", "mandatory")])
def test_digest_is_required_in_production_only(stack: str, level: str | None) -> None:
    records = mutable(platform(stack))
    _api_container(records)["image"] = "registry.example.com/support/api:1.4.2"
    violations = only(run_pack(records, stack), "image-tag-pinned")
    assert [v.level for v in violations] == ([level] if level else [])


@pytest.mark.parametrize(
    ("stack", "level"), [("dev", "advisory"), ("staging", "mandatory"), ("production", "mandatory")]
)
def test_missing_probe_is_advisory_in_dev(stack: str, level: str) -> None:
    records = mutable(platform(stack))
    del _api_container(records)["livenessProbe"]
    violations = only(run_pack(records, stack), "container-probes")
    assert [(v.resource, v.level) for v in violations] == [("api", level)]
    assert "spec.template.spec.containers[api].livenessProbe is <unset>" in violations[0].message


@pytest.mark.parametrize(("stack", "reported"), [("dev", False), ("staging", True), ("production", True)])
def test_minimum_uid_is_a_staging_and_production_setting(stack: str, reported: bool) -> None:
    records = mutable(platform(stack))
    _api_container(records)["securityContext"]["runAsUser"] = 1000
    violations = only(run_pack(records, stack), "pss-run-as-non-root")
    assert [v.level for v in violations] == (["mandatory"] if reported else [])


@pytest.mark.parametrize(("stack", "reported"), [("dev", False), ("staging", False), ("production", True)])
def test_protect_is_enforced_in_production_only(stack: str, reported: bool) -> None:
    records = mutable(platform(stack))
    find(records, "postgres").protect = False
    find(records, "data-ns").protect = False
    violations = only(run_pack(records, stack), "protect-stateful-resources")
    assert sorted(v.resource for v in violations) == (["data-ns", "postgres"] if reported else [])


def test_stack_policy_violation_names_the_resource() -> None:
    records = [r for r in platform("staging") if r.name != "api-pdb"]
    violations = mandatory(run_pack(records, "staging"))
    assert [(v.policy, v.resource) for v in violations] == [("pdb-coverage", "api")]
    assert violations[0].urn.endswith("::api")


def test_exemption_in_config_relaxes_one_resource_of_one_policy() -> None:
    records = mutable(platform("production"))
    _api_container(records)["image"] = "registry.example.com/support/api:1.4.2"
    raw = read_config_file("production")
    raw["image-tag-pinned"] = {
        **raw["image-tag-pinned"],
        "exemptions": [
            {"resource": "kubernetes:apps/v1:Deployment::api", "reason": "vendor image, digest pinned by mirror"}
        ],
    }
    assert only(run_pack(records, "production", raw_config=raw), "image-tag-pinned") == []
    raw["image-tag-pinned"]["exemptions"] = [{"resource": "web", "reason": "another resource"}]
    assert len(only(run_pack(records, "production", raw_config=raw), "image-tag-pinned")) == 1


def test_disabled_policy_reports_nothing() -> None:
    records = mutable(platform("production"))
    find(records, "postgres").protect = False
    raw = read_config_file("production")
    raw["protect-stateful-resources"] = "disabled"
    assert only(run_pack(records, "production", raw_config=raw), "protect-stateful-resources") == []


def test_an_image_unknown_in_preview_is_left_to_the_update() -> None:
    # An image built by this update has no digest before its push; the update judges the pushed one.
    records = mutable(platform("production"))
    _api_container(records)["image"] = UNKNOWN_STRING_VALUE
    violations = run_pack(records, "production")
    assert only(violations, "image-tag-pinned") == []
    assert mandatory(violations) == []


def test_an_unknown_value_a_rule_does_not_expect_downgrades_it_to_advisory() -> None:
    records = mutable(platform("production"))
    _api_container(records)["securityContext"] = UNKNOWN_STRING_VALUE
    violations = run_pack(records, "production")
    skipped = [v for v in violations if "can't run policy" in v.message]
    assert skipped and {(v.level, v.resource) for v in skipped} == {("advisory", "api")}
    assert mandatory(violations) == []


def test_unknown_labels_skip_the_workload_in_stack_policies() -> None:
    records = mutable(platform("production"))
    find(records, "api").inputs["spec"]["template"]["metadata"]["labels"] = UNKNOWN_STRING_VALUE
    assert only(run_pack(records, "production"), "network-policy-coverage") == []


def test_unknown_network_policy_makes_coverage_advisory() -> None:
    records = mutable(platform("production"))
    find(records, "api-netpol").inputs["spec"]["podSelector"] = UNKNOWN_STRING_VALUE
    coverage = only(run_pack(records, "production"), "network-policy-coverage")
    assert [v.level for v in coverage] == ["advisory"]
    assert "during preview" in coverage[0].message


def test_secret_wrapped_inputs_are_unwrapped() -> None:
    records = mutable(platform("production"))
    secret_sig = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
    config_map = find(records, "api-config")
    config_map.inputs["data"]["DB_PASSWORD"] = {**secret_sig, "value": "hunter2"}
    violations = only(run_pack(records, "production"), "no-secrets-in-config-maps")
    assert [v.resource for v in violations] == ["api-config"]
    assert "hunter2" not in violations[0].message
