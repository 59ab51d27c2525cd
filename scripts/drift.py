"""Drift check: what changed in a stack's cluster outside Pulumi, per resource and property.

    venv/bin/python scripts/drift.py --stack production [--summary drift.md] [--allowlist FILE]
    make drift STACK=production

Runs `pulumi refresh --preview-only --json` (through scripts/stack.sh, against the team's backend:
PULUMI_BACKEND_URL) which reads every resource back from the cluster without changing the state,
and reports each difference from what the last update recorded, in the pull-request gate's Markdown.
Known noise (fields the HPA owns, server-set defaults, managed fields, controller annotations) is
filtered through the reviewed allowlist scripts/gate/drift-allowlist.yaml and counted.

Exit codes: 0 no drift, 1 drift found, 2 the check could not run (no backend, no deployed stack,
engine error).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.gate import budget, drift_report  # noqa: E402 - needs the project on sys.path
from scripts.gate.plan import has_prior_state, parse_steps  # noqa: E402


def run_refresh(stack: str) -> tuple[dict[str, Any], list[str]]:
    proc = subprocess.run(  # noqa: S603 - our own script with fixed arguments
        [str(ROOT / "scripts" / "stack.sh"), "run", stack, "refresh", "--preview-only", "--json", "--stack", stack],
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stderr.write(proc.stderr)
    try:
        digest = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        return {}, [f"refresh printed no JSON: {proc.stdout.strip()[:500]}"]
    errors = [
        " ".join(str(d.get("message", "")).split())
        for d in digest.get("diagnostics") or []
        if d.get("severity") == "error"
    ]
    if proc.returncode != 0:
        errors.append(f"pulumi refresh --preview-only exited {proc.returncode}" + ("" if digest else ": see the log"))
    return digest, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, choices=("dev", "staging", "production"))
    parser.add_argument("--summary", type=Path, help="append the Markdown summary here")
    parser.add_argument("--allowlist", type=Path, default=drift_report.ALLOWLIST, help="known noise (reviewed)")
    parser.add_argument("--refresh-json", type=Path, help="use this refresh plan instead of running refresh")
    parser.add_argument("--max-chars", type=int, default=budget.LIMIT, help="longest summary written")
    args = parser.parse_args(argv)

    try:
        allowlist = drift_report.load_allowlist(args.allowlist)
    except (OSError, drift_report.AllowlistError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    errors: list[str] = []
    if args.refresh_json:
        digest = json.loads(args.refresh_json.read_text())
    elif args.stack != "dev" and not os.environ.get("PULUMI_BACKEND_URL"):
        digest = {}
        errors.append(
            f"PULUMI_BACKEND_URL is not set: the check would read a private, empty state and find nothing. "
            f"Point it at the team's backend that holds `{args.stack}` (the repository secret of the same name)."
        )
    else:
        digest, errors = run_refresh(args.stack)
    if not errors and not has_prior_state(parse_steps(digest)):
        errors.append(f"stack `{args.stack}` has no deployed resources in this backend: there is nothing to check")
    found = [] if errors else drift_report.differences(digest, allowlist)
    summary = drift_report.render(args.stack, found, errors, args.max_chars)
    print(summary)
    if args.summary:
        with args.summary.open("a") as out:
            out.write(summary)
    if errors:
        return 2
    return 1 if any(d.allowed_by is None for d in found) else 0


if __name__ == "__main__":
    sys.exit(main())
