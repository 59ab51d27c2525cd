"""The pack's shared decoding: same findings as the SDK's own per-policy decoding, and once per resource."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pulumi_policy.policy as analyzer
import pytest

from support_policies import shared_decoding
from tests.harness import run_program

from .runner import run_pack

NAMES = ("json_format.MessageToDict", "deserialize_properties", "unknown_checking_proxy")


@pytest.fixture
def sdk_decoding() -> Iterator[None]:
    shared_decoding.uninstall()
    try:
        yield
    finally:
        shared_decoding.install()


def test_the_sdk_still_decodes_through_the_names_this_module_replaces() -> None:
    # An upgrade of pulumi-policy that decodes another way would silently lose the speed-up.
    for method in (analyzer._PolicyAnalyzerServicer.Analyze, analyzer._PolicyAnalyzerServicer.AnalyzeStack):
        source = inspect.getsource(method)
        assert all(name in source for name in NAMES), method.__name__


@pytest.mark.parametrize("stack", ["dev", "production"])
def test_the_findings_are_those_of_the_sdks_own_decoding(stack: str, sdk_decoding: None) -> None:
    records = run_program(stack).resources
    # Findings on every resource: a pack whose decoding went wrong would differ somewhere.
    for record in records:
        metadata = record.inputs.setdefault("metadata", {})
        metadata["namespace"] = "default"
        metadata.pop("labels", None)
    plain = run_pack(records, stack)
    shared_decoding.install()
    shared = run_pack(records, stack)
    assert plain and sorted(map(repr, shared)) == sorted(map(repr, plain))


def test_a_resource_is_decoded_once_for_all_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    original = shared_decoding._json_format.MessageToDict

    def counting(message: object, *args: object, **kwargs: object) -> object:
        calls.append(message)
        return original(message, *args, **kwargs)

    monkeypatch.setattr(analyzer, "json_format", shared_decoding._JsonFormat())
    monkeypatch.setattr(analyzer.json_format, "MessageToDict", shared_decoding._IdentityCache(counting))
    api = next(r for r in run_program("production").resources if r.name == "api-deployment")
    run_pack([api], "production")
    # Analyze and AnalyzeStack each decode the resource's and its provider's properties once,
    # whatever the number of policies (the SDK alone: once per policy).
    assert len(calls) == 4
