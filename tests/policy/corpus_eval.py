"""The labelled corpus (tests/policy/corpus/<policy>/{bad,good}-*.yaml) through the whole pack.

Each file is one small stack: its YAML documents are the resources, registered through the stack's
explicit provider, run through every policy with a stack's config (production: everything
mandatory). A document may carry `x-pulumi: {protect: true}` or `{provider: default}` for the
resource options a policy reads; the key is removed before the pack sees the object.

Labels: `<policy>/bad-*.yaml` is a positive for that policy and a negative for every other one,
except the policies its header names on an `# also: <policy> (why)` line (a fault some objects
cannot have without tripping a second rule); `good-*.yaml` is a negative for every policy. Known
limitations are labelled in the file too, so the numbers stay honest and a fix shows up:
`# known-miss: <why>` (a positive the pack does not catch) and
`# known-false-alarm: <policy>: <why>` (a negative that policy flags). `# issue: <object>` marks
the files that reproduce an object issue 20 lists.

    venv/bin/python -m tests.policy.corpus_eval [stack]    # prints the precision/recall table
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from support_policies import all_policies

from .runner import Record, mandatory, run_pack

CORPUS = Path(__file__).resolve().parent / "corpus"
PROJECT = "support-platform"
OPTIONS_KEY = "x-pulumi"


@dataclass(frozen=True)
class Case:
    path: Path
    policy: str  # the directory: the policy the file is labelled for
    bad: bool
    why: str
    also: frozenset[str]  # other policies a bad file is expected to trip
    known_miss: str | None
    known_false_alarms: Mapping[str, str]  # policy -> why
    issue: str | None  # the object of issue 20 this file reproduces, if any
    documents: tuple[Mapping[str, Any], ...]

    @property
    def name(self) -> str:
        return f"{self.policy}/{self.path.stem}"

    def positive_for(self, policy: str) -> bool:
        return self.bad and policy == self.policy

    def negative_for(self, policy: str) -> bool:
        return not self.positive_for(policy) and not (self.bad and policy in self.also)


def _header(text: str, key: str) -> list[str]:
    prefix = f"# {key}:"
    return [line[len(prefix) :].strip() for line in text.splitlines() if line.startswith(prefix)]


def load_case(path: Path) -> Case:
    text = path.read_text(encoding="utf-8")
    kind = path.stem.split("-", 1)[0]
    if kind not in ("bad", "good"):
        raise ValueError(f"{path}: corpus files are named bad-*.yaml or good-*.yaml")
    whys = _header(text, kind)
    if len(whys) != 1:
        raise ValueError(f"{path}: needs exactly one '# {kind}: <why>' line")
    alarms = {}
    for entry in _header(text, "known-false-alarm"):
        policy, _, why = entry.partition(":")
        alarms[policy.strip()] = why.strip()
    misses = _header(text, "known-miss")
    issue = _header(text, "issue")
    # libyaml's loader (same safe types): the corpus is read at collection, by every worker.
    documents = tuple(doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc is not None)
    if not documents:
        raise ValueError(f"{path}: no Kubernetes object in it")
    return Case(
        path=path,
        policy=path.parent.name,
        bad=kind == "bad",
        why=whys[0],
        also=frozenset(entry.split()[0] for entry in _header(text, "also")),
        known_miss=misses[0] if misses else None,
        known_false_alarms=alarms,
        issue=issue[0] if issue else None,
        documents=documents,
    )


def load_corpus(root: Path = CORPUS) -> list[Case]:
    return [load_case(path) for path in sorted(root.glob("*/*.yaml"))]


def type_token(document: Mapping[str, Any]) -> str:
    api_version = str(document["apiVersion"])
    module = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{module}:{document['kind']}"


def records(case: Case, stack: str) -> list[Record]:
    provider = f"urn:pulumi:{stack}::{PROJECT}::pulumi:providers:kubernetes::{stack}-k8s::corpus-provider-id"
    result = []
    for document in case.documents:
        options = dict(document.get(OPTIONS_KEY) or {})
        inputs = {k: v for k, v in document.items() if k != OPTIONS_KEY}
        resource_type = type_token(inputs)
        name = f"{str(inputs['kind']).lower()}-{inputs['metadata']['name']}"
        result.append(
            Record(
                type=resource_type,
                name=name,
                urn=f"urn:pulumi:{stack}::{PROJECT}::{resource_type}::{name}",
                inputs=inputs,
                protect=bool(options.get("protect", False)),
                # "default": none recorded, so the runner assigns the engine's default provider.
                provider=None if options.get("provider") == "default" else provider,
            )
        )
    names = [r.name for r in result]
    if len(names) != len(set(names)):
        raise ValueError(f"{case.path}: two objects of one kind share a name")
    return result


def flagged_by(case: Case, stack: str = "production") -> frozenset[str]:
    """The policies that report a blocking finding on the case."""
    return frozenset(v.policy for v in mandatory(run_pack(records(case, stack), stack)))


@dataclass
class Score:
    true_positives: list[str] = field(default_factory=list)
    false_negatives: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        found = len(self.true_positives) + len(self.false_positives)
        return len(self.true_positives) / found if found else None

    @property
    def recall(self) -> float | None:
        positives = len(self.true_positives) + len(self.false_negatives)
        return len(self.true_positives) / positives if positives else None


def score(cases: Sequence[Case], results: Mapping[str, frozenset[str]], policies: Iterable[str]) -> dict[str, Score]:
    scores = {policy: Score() for policy in policies}
    for case in cases:
        flagged = results[case.name]
        for policy, entry in scores.items():
            if case.positive_for(policy):
                (entry.true_positives if policy in flagged else entry.false_negatives).append(case.name)
            elif case.negative_for(policy) and policy in flagged:
                entry.false_positives.append(case.name)
    return scores


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def table(scores: Mapping[str, Score], cases: Sequence[Case]) -> str:
    """Markdown: per policy the labelled files, TP/FN/FP, precision and recall; then the totals."""
    counts = {policy: (0, 0) for policy in scores}
    for case in cases:
        if case.policy in counts:
            bad, good = counts[case.policy]
            counts[case.policy] = (bad + case.bad, good + (not case.bad))
    lines = [
        "| policy | bad | good | TP | FN | FP | precision | recall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for policy, entry in scores.items():
        bad, good = counts[policy]
        lines.append(
            f"| `{policy}` | {bad} | {good} | {len(entry.true_positives)} | {len(entry.false_negatives)} | "
            f"{len(entry.false_positives)} | {_ratio(entry.precision)} | {_ratio(entry.recall)} |"
        )
    total = Score(
        [n for s in scores.values() for n in s.true_positives],
        [n for s in scores.values() for n in s.false_negatives],
        [n for s in scores.values() for n in s.false_positives],
    )
    lines.append(
        f"| all ({len(cases)} files) | {sum(c.bad for c in cases)} | {sum(not c.bad for c in cases)} | "
        f"{len(total.true_positives)} | {len(total.false_negatives)} | {len(total.false_positives)} | "
        f"{_ratio(total.precision)} | {_ratio(total.recall)} |"
    )
    return "\n".join(lines)


@functools.cache  # deterministic: the tests that read it share one run
def evaluate(stack: str = "production") -> tuple[list[Case], dict[str, frozenset[str]], dict[str, Score]]:
    cases = load_corpus()
    results = {case.name: flagged_by(case, stack) for case in cases}
    return cases, results, score(cases, results, [p.name for p in all_policies()])


def main(argv: Sequence[str]) -> int:
    stack = argv[0] if argv else "production"
    cases, _, scores = evaluate(stack)
    print(f"Corpus through the pack with policies/config/{stack}.json (mandatory findings):\n")
    print(table(scores, cases))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
