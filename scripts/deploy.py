"""Deploy a stack, verify it, and roll back by itself when the release does not hold: what the workflows run.

    venv/bin/python scripts/deploy.py --stack production --message "release v1.5.0" [--summary FILE]

1. Note the last update that succeeded (the version to return to).
2. `scripts/stack.sh up <stack>` with the policy pack.
3. `scripts/verify_deploy.py`: rollouts at their new generation and ready, the migration Job succeeded,
   the edge answering where it is reachable. After a failed `up` it looks once, without waiting, to
   say what is wrong.
4. If either failed: `scripts/rollback.py --to <that version> --yes` (the earlier configuration, built
   images by their pushed digests), then verify again, and exit 1 with what failed and what was
   restored. With no earlier succeeded update there is nothing to return to: it says so.
The summary (Markdown, e.g. $GITHUB_STEP_SUMMARY) says the same for the job page.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts import rollback  # noqa: E402 - the project on sys.path first

SCRIPTS = ROOT / "scripts"


@dataclass
class Step:
    name: str
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


Runner = Callable[[Sequence[str]], Step]


def run(command: Sequence[str]) -> Step:
    """Run a step, its output streamed to the log as it comes and kept for the summary."""
    print(f"\n$ {' '.join(command)}", flush=True)
    process = subprocess.Popen(  # noqa: S603 - our own scripts
        list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    return Step(step_name(command), process.wait(), "".join(lines))


def step_name(command: Sequence[str]) -> str:
    """`stack.sh up staging`, `verify_deploy.py --stack staging`: the script and what it acts on."""
    for index, part in enumerate(command):
        if part.endswith((".py", ".sh")):
            return " ".join([Path(part).name, *command[index + 1 : index + 3]])
    return command[0]


def last_succeeded(updates: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    done = [u for u in updates if u.get("kind") == "update" and u.get("result") == "succeeded"]
    return max(done, key=lambda u: int(u["version"])) if done else None


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


@dataclass
class Outcome:
    stack: str
    steps: list[Step] = field(default_factory=list)
    restored: Mapping[str, Any] | None = None
    verdict: str = ""

    def markdown(self) -> str:
        lines = [f"### Deploy `{self.stack}`: {self.verdict}", ""]
        for step in self.steps:
            lines.append(f"- `{step.name}`: {'ok' if step.ok else f'failed (exit {step.returncode})'}")
        failed = [s for s in self.steps if not s.ok]
        if failed:
            lines += ["", "What failed:", "", "```", tail(failed[0].output, 40), "```"]
        if self.restored is not None:
            images = rollback.image_versions(self.restored.get("config") or {})
            lines.append("")
            lines.append(
                f"Restored version {self.restored['version']} ({images}). Commit the restored "
                f"`Pulumi.{self.stack}.yaml` (attached) or fix forward: the next deploy applies main."
            )
        return "\n".join(lines) + "\n"


def deploy(
    stack: str,
    message: str,
    verify_args: Sequence[str],
    runner: Runner = run,
    history: Callable[[str], list[dict[str, Any]]] = rollback.history,
) -> tuple[int, Outcome]:
    python = sys.executable
    outcome = Outcome(stack)
    previous = last_succeeded(history(stack))
    up = runner([str(SCRIPTS / "stack.sh"), "up", stack, "--message", message])
    outcome.steps.append(up)
    # After a failed up, one look without waiting: what the cluster shows is why.
    wait = list(verify_args) if up.ok else [*verify_args, "--timeout", "0", "--settle", "0"]
    verified = runner([python, str(SCRIPTS / "verify_deploy.py"), "--stack", stack, *wait])
    outcome.steps.append(verified)
    if up.ok and verified.ok:
        outcome.verdict = "deployed and verified"
        return 0, outcome
    if previous is None:
        outcome.verdict = "FAILED; no earlier succeeded update to return to, nothing was rolled back"
        return 1, outcome
    version = str(previous["version"])
    back = runner([python, str(SCRIPTS / "rollback.py"), "--stack", stack, "--to", version, "--yes"])
    outcome.steps.append(back)
    if not back.ok:
        outcome.verdict = f"FAILED, and the rollback to version {version} failed too: the stack needs a person"
        return 3, outcome
    again = runner([python, str(SCRIPTS / "verify_deploy.py"), "--stack", stack, *verify_args])
    outcome.steps.append(again)
    outcome.restored = previous
    restored = "verified" if again.ok else "NOT verified either"
    outcome.verdict = f"FAILED; rolled back to version {version} ({restored})"
    return 1, outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, choices=("staging", "production"))
    parser.add_argument("--message", required=True, help="the update's message in the history")
    parser.add_argument("--summary", type=Path, help="append a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--verify-timeout", default="600", help="seconds to wait for the rollouts (default 600)")
    parser.add_argument("--settle", default="30", help="seconds the release must stay ready (default 30)")
    parser.add_argument("--edge-url", help="where the verification reaches the edge (default: https://<host>)")
    args = parser.parse_args(argv)
    verify_args = ["--timeout", args.verify_timeout, "--settle", args.settle]
    if args.edge_url:
        verify_args += ["--edge-url", args.edge_url]
    code, outcome = deploy(args.stack, args.message, verify_args)
    text = outcome.markdown()
    print(f"\n{text}")
    if args.summary is not None:
        with args.summary.open("a") as handle:
            handle.write(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
