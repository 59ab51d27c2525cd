"""The built-image ledger (components/image_ledger.py) and how scripts/rollback.py reads it.

Under mocks the pushed digest of a build is `repository@sha256:sha256(resource name)` (tests/harness.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from components.image_ledger import KEEP, LEDGER_OUTPUT, image_before, recorded, with_images
from scripts import rollback
from tests.harness import overlay, raw_stack_value, run_program, stack_config

T0 = dt.datetime(2026, 12, 6, 10, 0, 0, tzinfo=dt.UTC)
A = "registry.example.com/support/api@sha256:" + "a" * 64
B = "registry.example.com/support/api@sha256:" + "b" * 64
C = "registry.example.com/support/api@sha256:" + "c" * 64


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def history_entry(version: int, start: float, result: str = "succeeded") -> dict[str, Any]:
    return {"version": version, "kind": "update", "result": result,
            "startTime": at(start).strftime("%Y-%m-%dT%H:%M:%S.000Z")}  # fmt: skip


def test_an_entry_is_added_only_when_the_digest_changes_and_old_ones_fall_off() -> None:
    ledger = with_images({}, {"api": A}, at(5.25))
    assert ledger == {"api": [{"image": A, "since": "2026-12-06T10:00:05.250000+00:00"}]}
    assert with_images(ledger, {"api": A}, at(60)) == ledger
    ledger = with_images(ledger, {"api": B, "agent": C}, at(70))
    assert [e["image"] for e in ledger["api"]] == [A, B] and [e["image"] for e in ledger["agent"]] == [C]
    # A service built no more keeps its record (a rollback to a pinned image must not erase it).
    assert with_images(ledger, {"agent": C}, at(80))["api"] == ledger["api"]
    long: dict[str, list[dict[str, str]]] = {}
    for i in range(KEEP + 5):
        long = with_images(long, {"api": A if i % 2 else B}, at(i))
    assert len(long["api"]) == KEEP and long["api"][-1]["image"] == (A if (KEEP + 4) % 2 else B)


def test_a_recorded_ledger_keeps_only_well_formed_entries() -> None:
    previous = {
        "api": [
            {"image": A, "since": at(1).isoformat()},
            {"image": "registry.example.com/support/api:1.5.0", "since": at(2).isoformat()},
            {"image": B, "since": "yesterday"},
            {"image": C, "since": "2026-12-06T10:00:03"},  # no zone: not ours
            "junk",
        ],
        "web": "not a list",
    }
    assert recorded(previous) == {"api": [{"image": A, "since": at(1).isoformat()}]}
    assert recorded(None) == {} and recorded(["x"]) == {}


def test_the_image_before_a_boundary_and_the_ambiguous_second() -> None:
    entries = [{"image": A, "since": at(10.5).isoformat()}, {"image": B, "since": at(40.2).isoformat()}]
    assert image_before(entries, None) == (B, False)
    assert image_before(entries, at(30)) == (A, False)
    assert image_before(entries, at(5)) == (None, False)
    assert image_before(entries, at(41)) == (B, False)
    # Stamped within the boundary's (whole) second: either side could have pushed it.
    assert image_before(entries, at(40)) == (None, True)
    assert image_before([], None) == (None, False)


def test_rollback_reads_the_digest_each_version_deployed() -> None:
    updates = [history_entry(1, 0), history_entry(2, 30), history_entry(3, 60, "failed"), history_entry(4, 90)]
    ledger = {"api": [{"image": A, "since": at(12).isoformat()}, {"image": B, "since": at(45).isoformat()},
                      {"image": C, "since": at(95).isoformat()}]}  # fmt: skip
    assert rollback.deployed_images(ledger, ["api"], 1, updates) == {"api": A}
    assert rollback.deployed_images(ledger, ["api"], 2, updates) == {"api": B}
    assert rollback.deployed_images(ledger, ["api"], 4, updates) == {"api": C}
    # Nothing recorded for it: pinned_builds then names the manual fix.
    assert rollback.deployed_images({"api": []}, ["api"], 1, updates) == {}
    assert rollback.deployed_images(None, ["api"], 1, updates) == {}
    close = {"api": [{"image": A, "since": at(30.4).isoformat()}]}
    with pytest.raises(rollback.RollbackError, match=r"cannot be told apart .* `pulumi stack output builtImages`"):
        rollback.deployed_images(close, ["api"], 1, updates)


def test_a_built_service_is_restored_as_the_digest_it_pushed() -> None:
    build = {"context": "app-src", "repository": "127.0.0.1:5000/support/api", "tag": "1.5.0"}
    config: dict[str, Any] = {"support-platform:app": {"services": {"api": {"build": build, "replicas": 1}}}}
    assert rollback.built_services(config["support-platform:app"]) == ["api"]
    assert rollback.pinned_builds(config, {"api": A}) == [f"api={A}"]
    assert config["support-platform:app"]["services"]["api"] == {"replicas": 1, "image": A}
    with pytest.raises(
        rollback.RollbackError, match=r"builtImages output records no digest .*app\.services\.api\.image"
    ):
        rollback.pinned_builds({"support-platform:app": {"services": {"api": {"build": build}}}}, {})


# --- the program exports it ------------------------------------------------------------------------

REPOSITORY = "registry.example.com/support/api"


def building_config() -> tuple[dict[str, str], list[str]]:
    app = overlay(raw_stack_value("dev", "app"), {"services": {"api": {"build": {
        "context": "tests/fixtures/api-image", "repository": REPOSITORY, "tag": "1.5.0"}}}})  # fmt: skip
    del app["services"]["api"]["image"]
    return stack_config("dev", overrides={"app": app})


@pytest.mark.usefixtures("docker_daemon")
def test_a_building_stack_records_its_pushed_digest_and_keeps_the_earlier_ones() -> None:
    config, secret_keys = building_config()
    first = run_program("dev", config, secret_keys)
    assert first.error is None, first.error
    (entry,) = first.outputs[LEDGER_OUTPUT]["api"]
    assert entry["image"].startswith(f"{REPOSITORY}@sha256:")
    assert dt.datetime.fromisoformat(entry["since"]).tzinfo is not None
    # The same digest again: the record does not change, so a no-op up changes no output.
    again = run_program("dev", config, secret_keys, previous_outputs={LEDGER_OUTPUT: first.outputs[LEDGER_OUTPUT]})
    assert again.outputs[LEDGER_OUTPUT] == first.outputs[LEDGER_OUTPUT]
    earlier = {"api": [{"image": B, "since": at(0).isoformat()}], "agent": [{"image": C, "since": at(1).isoformat()}]}
    later = run_program("dev", config, secret_keys, previous_outputs={LEDGER_OUTPUT: earlier})
    assert [e["image"] for e in later.outputs[LEDGER_OUTPUT]["api"]] == [B, entry["image"]]
    assert later.outputs[LEDGER_OUTPUT]["agent"] == earlier["agent"]


def test_a_stack_that_never_built_exports_no_record_but_keeps_an_earlier_one() -> None:
    assert LEDGER_OUTPUT not in run_program("dev").outputs
    earlier = {"api": [{"image": B, "since": at(0).isoformat()}]}
    pinned_again = run_program("dev", previous_outputs={LEDGER_OUTPUT: earlier, "dataShape": {}})
    assert pinned_again.outputs[LEDGER_OUTPUT] == earlier
