"""The labelled corpus through the whole pack (production config): every file is judged exactly as
labelled, and the per-policy precision and recall are printed (see corpus_eval.py)."""

from __future__ import annotations

import copy
import functools

import pytest

from support_policies import all_policies
from tests.harness import run_program

from .corpus_eval import Case, Score, evaluate, load_corpus, records, table
from .runner import Record, format_violations, mandatory, run_pack

POLICY_NAMES = [p.name for p in all_policies()]
CASES = load_corpus()


def corpus_results() -> tuple[list[Case], dict[str, frozenset[str]], dict[str, Score]]:
    return evaluate("production")


def test_every_policy_has_two_bad_objects_and_a_good_one() -> None:
    assert {case.policy for case in CASES} == set(POLICY_NAMES), "one directory per policy, no other"
    for policy in POLICY_NAMES:
        kinds = [case.bad for case in CASES if case.policy == policy]
        assert kinds.count(True) >= 2 and kinds.count(False) >= 1, policy


def test_every_label_names_a_policy_of_the_pack() -> None:
    for case in CASES:
        assert case.also <= set(POLICY_NAMES), case.name
        assert set(case.known_false_alarms) <= set(POLICY_NAMES), case.name
        assert not (case.known_miss and not case.bad), f"{case.name}: only a bad file can be missed"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_file_is_judged_as_labelled(case: Case) -> None:
    _, results, _ = corpus_results()
    flagged = results[case.name]
    if case.bad and case.known_miss:
        assert case.policy not in flagged, f"{case.name} is caught now: drop its known-miss line"
    elif case.bad:
        assert case.policy in flagged, f"{case.policy} misses {case.name} ({case.why})"
    # Anything else that flags the file must be labelled: `also` for a bad file, a known false alarm.
    others = flagged - {case.policy} if case.bad else flagged
    expected = (set(case.also) if case.bad else set()) | set(case.known_false_alarms)
    assert others == expected, f"{case.name}: flagged by {sorted(others)}, labelled {sorted(expected)}"


def test_print_precision_and_recall(capsys: pytest.CaptureFixture[str]) -> None:
    cases, _, scores = corpus_results()
    rendered = table(scores, cases)
    with capsys.disabled():
        print("\n\nPolicy corpus (production config), per policy:\n" + rendered + "\n")
    assert rendered.count("\n") == len(POLICY_NAMES) + 2


# --- every object of the issue, added to the real production stack --------------------------------

ISSUE_CASES = [case for case in CASES if case.issue]


@functools.cache
def production() -> tuple[Record, ...]:
    run = run_program("production")
    assert run.error is None, run.error
    return tuple(run.resources)  # type: ignore[arg-type]


def test_the_issue_s_objects_are_all_in_the_corpus() -> None:
    assert len(ISSUE_CASES) == 11, [case.issue for case in ISSUE_CASES]


@pytest.mark.parametrize("case", ISSUE_CASES, ids=[case.name for case in ISSUE_CASES])
def test_each_object_of_the_issue_is_refused_on_production(case: Case) -> None:
    """One at a time, as the issue tried them: objects of two cases could satisfy each other's rules."""
    added = records(case, "production")
    violations = run_pack([*copy.deepcopy(production()), *added], "production")
    caught = [v for v in mandatory(violations) if v.policy == case.policy and v.resource in {r.name for r in added}]
    assert caught, f"{case.issue}: not refused by {case.policy}\n{format_violations(violations)}"
