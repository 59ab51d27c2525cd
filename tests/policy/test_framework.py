"""The shared policy machinery: message format, settings, exemptions, unknown values."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import PolicyConfigSchema, ResourceValidationArgs, Severity
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

from support_policies.availability import pdb_coverage
from support_policies.framework import Finding, Setting, Settings, Subject, known_or_skip, resource_policy
from support_policies.pod_security import pss_no_privileged_containers

from .fixtures import (
    TYPES,
    check_resource,
    check_stack,
    engine_view,
    options,
    provider,
    resource,
    subject_label,
    with_container,
    workload,
)
from .fixtures import container as make_container


def privileged_deployment() -> tuple[str, dict[str, Any]]:
    return with_container("Deployment", "containers", make_container("extra", securityContext={"privileged": True}))


def test_message_names_resource_path_value_and_fix() -> None:
    subject = Subject(TYPES["Deployment"], "api", "urn", engine_view({}), False, None)
    finding = Finding("spec.replicas", 3.0, "it is pinned", "omit it")
    assert finding.message(subject) == (
        'kubernetes:apps/v1:Deployment "api": spec.replicas is 3; it is pinned. Fix: omit it'
    )
    assert Finding("a", None, "p", "f").message(subject).startswith(f"{subject_label('Deployment')}: a is <unset>;")


@pytest.mark.parametrize("exempted", ["api", "kubernetes:apps/v1:Deployment::api"])
def test_exemption_by_name_or_type_and_name(exempted: str) -> None:
    config = {"exemptions": [{"resource": exempted, "reason": "debug sidecar, ticket SUP-1"}]}
    assert check_resource(pss_no_privileged_containers, *privileged_deployment(), config=config) == []


@pytest.mark.parametrize("exempted", ["web", "kubernetes:apps/v1:StatefulSet::api", "kubernetes:apps/v1:Deployment"])
def test_exemption_for_something_else_does_not_apply(exempted: str) -> None:
    config = {"exemptions": [{"resource": exempted, "reason": "another resource"}]}
    assert len(check_resource(pss_no_privileged_containers, *privileged_deployment(), config=config)) == 1


def test_stack_policy_exemption_applies_to_the_reported_resource() -> None:
    app = resource(*workload("Deployment", replicas=3), "api")
    other = resource(*workload("StatefulSet", name="db", replicas=3), "db")
    assert sorted(name for name, _ in check_stack(pdb_coverage, [app, other])) == ["api", "db"]
    config = {"exemptions": [{"resource": "api", "reason": "stateless canary, drained by hand"}]}
    assert [name for name, _ in check_stack(pdb_coverage, [app, other], config)] == ["db"]


def test_settings_fall_back_to_schema_defaults() -> None:
    schema = PolicyConfigSchema(
        {"limit": {"type": "integer", "default": 2}, "flag": {"type": "boolean", "default": True}}
    )
    defaults = Settings({}, schema)
    assert (defaults.number("limit"), defaults.flag("flag")) == (2.0, True)
    configured = Settings({"limit": 5.0, "flag": False}, schema)
    assert (configured.number("limit"), configured.flag("flag")) == (5.0, False)
    assert Settings({"limit": "five"}, schema).number("limit") == 2.0


def test_setting_needs_a_default() -> None:
    with pytest.raises(ValueError, match="default"):
        Setting("noDefault", {"type": "boolean"})


def _no_findings(subject: Subject, settings: Settings) -> list[Finding]:
    return []


def test_every_policy_schema_declares_exemptions_with_reason() -> None:
    policy = resource_policy(name="p", description="d.", check=_no_findings, severity=Severity.LOW, tags=("t",))
    assert policy.config_schema is not None
    items = policy.config_schema.properties["exemptions"]["items"]
    assert items["required"] == ["resource", "reason"]


def test_unknown_value_in_a_resource_policy_reaches_the_sdk() -> None:
    resource_type, props = privileged_deployment()
    props["spec"]["template"]["spec"]["containers"][1]["securityContext"] = UNKNOWN_STRING_VALUE
    args = ResourceValidationArgs(resource_type, engine_view(props), "urn", "api", options(), provider(), {})
    with pytest.raises(UnknownValueError):
        pss_no_privileged_containers.validate(args, _ignore)


def _ignore(message: str, urn: str | None = None) -> None:
    return None


def test_known_or_skip_drops_only_unknown_subjects() -> None:
    known = Subject(TYPES["Deployment"], "a", "urn-a", engine_view({"metadata": {"name": "a"}}), False, None)
    unknown = Subject(
        TYPES["Deployment"], "b", "urn-b", engine_view({"metadata": {"name": UNKNOWN_STRING_VALUE}}), False, None
    )
    assert list(known_or_skip([known, unknown], lambda s: s.object_name)) == ["a"]
