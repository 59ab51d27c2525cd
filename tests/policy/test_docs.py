"""docs/guardrails.md against what it documents: the levels per stack, the exemptions of the config
files, the checkov waivers and the corpus table."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.checkov_gate import load_waivers
from support_policies import all_policies

from .corpus_eval import evaluate, table
from .pack_config import STACKS, read_config_file

DOC = Path(__file__).resolve().parents[2] / "docs" / "guardrails.md"
TEXT = DOC.read_text(encoding="utf-8")


def test_the_catalogue_table_has_every_policy_with_its_levels() -> None:
    configs = {stack: read_config_file(stack) for stack in STACKS}
    for policy in all_policies():
        rows = re.findall(rf"^\|[^|\n]*\| `{re.escape(policy.name)}` \|([^|\n]*)\|([^|\n]*)\|([^|\n]*)\|", TEXT, re.M)
        assert len(rows) == 1, f"docs/guardrails.md needs one catalogue row for {policy.name}"
        assert [c.strip() for c in rows[0]] == [configs[s][policy.name]["enforcementLevel"] for s in STACKS]


def test_every_exemption_of_the_config_files_is_listed_with_its_reason() -> None:
    for stack in STACKS:
        for policy, entry in read_config_file(stack).items():
            for exemption in entry.get("exemptions", []):
                row = f"| `{policy}` | `{exemption['resource']}` | {exemption['reason']} |"
                assert row in TEXT, f"{stack}: {row}"


def test_every_checkov_waiver_is_listed() -> None:
    for waiver in load_waivers():
        assert waiver.check in TEXT
        for resource in waiver.resources:
            assert f"`{resource}`" in TEXT, resource


def test_the_corpus_table_is_the_current_one() -> None:
    cases, _, scores = evaluate("production")
    documented = TEXT.split("<!-- corpus-table:start -->\n", 1)[1].split("\n<!-- corpus-table:end -->", 1)[0]
    assert documented == table(scores, cases), "run `venv/bin/python -m tests.policy.corpus_eval` and paste the table"
