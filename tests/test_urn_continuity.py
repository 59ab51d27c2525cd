"""Every resource the program registered before the tiers were restructured keeps its URN, or the
resource that replaces it in the code carries an alias onto it: under mocks, for every stack.

A changed parent or type token changes a resource's URN, and the engine then deletes and recreates
it (StatefulSets and claims included) unless an alias says where it was. The cluster suite proves
the same on a deployed stack (tests/e2e/test_upgrade_in_place.py); this is the cheap guard.
"""

from __future__ import annotations

import inspect
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from google.protobuf import json_format

from tests import harness
from tests.e2e.test_upgrade_in_place import BEFORE_RESTRUCTURE
from tests.harness import ROOT, STACKS

# Extracts the old tree from git history and runs it in another Python process: `make integration`.
pytestmark = pytest.mark.integration


# The mock monitor's URNs name only a resource's parent's type; the engine's name the whole chain of
# types from the stack down. Resources are compared as the engine names them: "<type chain>::<name>".
def qualified(resources: Sequence[Any]) -> dict[str, str]:
    by_urn = {r.urn: r for r in resources}

    def chain(r: Any) -> str:
        parent = by_urn.get(r.parent)
        return str(r.type) if parent is None else f"{chain(parent)}${r.type}"

    return {r.urn: f"{chain(r)}::{r.name}" for r in resources}


# The same function in the archived tree's run below.
QUALIFY = "from typing import Any, Sequence\n" + inspect.getsource(qualified)

# Runs in the archived tree: its own harness, its own components.
OLD_URNS = (
    QUALIFY
    + """
import json, sys
sys.path.insert(0, ".")
from tests.harness import STACKS, run_program
urns = {}
for stack in STACKS:
    run = run_program(stack)
    assert run.error is None, run.error
    urns[stack] = sorted(qualified(run.resources).values())
print(json.dumps(urns))
"""
)


@pytest.fixture(scope="module")
def old_urns(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    command = ["git", "-C", str(ROOT), "archive", "--format=tar", BEFORE_RESTRUCTURE]
    proc = subprocess.run(command, capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.fail(
            f"commit {BEFORE_RESTRUCTURE} is not in this checkout's history: fetch the full history "
            f"(git fetch --unshallow) to compare URNs. git said: {proc.stderr.decode(errors='replace').strip()}"
        )
    old = tmp_path_factory.mktemp("before")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as archive:
        archive.extractall(old, filter="data")
    run = subprocess.run(
        [sys.executable, "-c", OLD_URNS], cwd=old, capture_output=True, text=True, check=False, timeout=600
    )
    assert run.returncode == 0, run.stderr[-4000:]
    urns: dict[str, list[str]] = json.loads(run.stdout.strip().splitlines()[-1])
    return urns


class AliasRecordingMonitor(harness.RecordingMonitor):
    """The harness' monitor, also keeping each resource's alias specs."""

    aliases: dict[str, list[dict[str, Any]]]

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        specs = [json_format.MessageToDict(a) for a in request.aliases]
        if specs:
            self.aliases[response.urn] = specs
        return response


@pytest.fixture
def recording_aliases(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[dict[str, Any]]]]:
    aliases: dict[str, list[dict[str, Any]]] = {}

    def monitor(mocks: Any) -> AliasRecordingMonitor:
        made = AliasRecordingMonitor(mocks)
        made.aliases = aliases
        return made

    monkeypatch.setattr(harness, "RecordingMonitor", monitor)
    yield aliases


def aliased_as(name: str, own: str, spec: dict[str, Any], names: dict[str, str]) -> str:
    """The engine's name ("<type chain>::<name>") an alias spec gives a resource now named `own`;
    `names` maps mock URNs to engine names (for the alias' parent)."""
    spec = spec.get("spec", spec)
    chain, _, current = own.rpartition("::")
    kind = spec.get("type") or chain.rsplit("$", 1)[-1]
    if spec.get("parentUrn"):
        chain = f"{names[str(spec['parentUrn'])].rpartition('::')[0]}${kind}"
    elif spec.get("noParent"):
        chain = kind
    else:
        chain = f"{chain.rsplit('$', 1)[0]}${kind}" if "$" in chain else kind
    return f"{chain}::{spec.get('name') or current}"


def current(stack: str, aliases: dict[str, list[dict[str, Any]]]) -> tuple[set[str], dict[str, str]]:
    """This tree's resources as the engine names them, and each alias' old name -> the new name."""
    # Uncached: the aliases are recorded while the program runs (harness.execute_program where the
    # harness caches its runs).
    run = getattr(harness, "execute_program", harness.run_program)(stack)
    assert run.error is None, run.error
    names = qualified(run.resources)
    aliased = {}
    for urn, specs in aliases.items():
        # Type-only aliases are the Kubernetes SDK's own (older API versions of a kind); the
        # program's say where a resource was: another parent or name.
        for spec in specs:
            if any(spec.get("spec", spec).get(key) for key in ("parentUrn", "name", "noParent")):
                aliased[aliased_as(urn, names[urn], spec, names)] = names[urn]
    return set(names.values()), aliased


@pytest.mark.parametrize("stack", STACKS)
def test_every_old_urn_is_kept_or_aliased(
    stack: str, old_urns: dict[str, list[str]], recording_aliases: dict[str, list[dict[str, Any]]]
) -> None:
    new, aliased = current(stack, recording_aliases)
    missing = sorted(u for u in old_urns[stack] if u not in new and u not in aliased)
    assert missing == [], "resources whose URN changed without an alias (the engine would replace them):\n" + "\n".join(
        missing
    )
    # An alias that names no old resource is a typo that protects nothing.
    stale = sorted(a for a in aliased if a not in old_urns[stack])
    assert stale == [], stale


def test_the_moved_backup_job_is_aliased_onto_its_old_place(
    old_urns: dict[str, list[str]], recording_aliases: dict[str, list[dict[str, Any]]]
) -> None:
    new, aliased = current("production", recording_aliases)
    moved = "support:data:Postgres$kubernetes:batch/v1:Job::api-migration-backup"
    job = next(n for n in new if n.endswith("::api-migration-backup"))
    assert job.endswith(moved), job
    old = next(u for u in old_urns["production"] if u.endswith("::api-migration-backup"))
    assert "support:data:Migration$kubernetes:batch/v1:Job" in old
    assert old not in new
    assert aliased[old] == job


def test_alias_names_are_computed_like_the_engine() -> None:
    own = "a:b:Parent$k:v:Job::job"
    names = {"urn:mock:mig": "a:b:Old$a:b:Mig::mig"}
    assert aliased_as("u", own, {"spec": {"parentUrn": "urn:mock:mig"}}, names) == "a:b:Old$a:b:Mig$k:v:Job::job"
    assert aliased_as("u", own, {"spec": {"name": "old-job"}}, names) == "a:b:Parent$k:v:Job::old-job"
    assert aliased_as("u", own, {"spec": {"noParent": True}}, names) == "k:v:Job::job"
