"""Pull-request gate: preview a stack, summarise the plan in Markdown, stop plans that lose data.

    venv/bin/python scripts/pr_gate.py --stack production --summary gate.md [--base-ref origin/main]
        [--allow-destructive REASON] [--allow-growth REASON] [--first-deploy REASON]

Runs `pulumi preview --json --show-sames` (through scripts/stack.sh: the project's backend, engine
and policy pack) with an engine event log beside it, because the JSON digest leaves policy events
out. The summary (docs/pull-requests.md) shows, within a size a pull-request comment accepts: what
would lose data, the change counts per resource type, the capacity delta (CPU, memory, storage at
minimum replicas and at the HPA maximum), every policy finding, the property that forces each
replacement, the capacity per changed workload, the stack file's changes against the base branch,
and every other change.

The gate fails when
- the preview fails (a mandatory policy included);
- the plan would replace or delete a resource that holds data: a StatefulSet, a PersistentVolumeClaim
  or PersistentVolume, a Secret with data, a CustomResourceDefinition (deleting one deletes every
  object of its kind), a Namespace (deleting one deletes everything in it) or any protected resource,
  unless `--allow-destructive REASON`;
- the totals at the HPA maximum grow by more than scripts/gate/settings.yaml allows, unless
  `--allow-growth REASON`;
- staging or production is previewed with no team backend (PULUMI_BACKEND_URL unset: scripts/stack.sh
  would preview against a private, empty file backend) or against a stack with no prior state: every
  step a create, nothing to compare, a green gate on nothing. `--first-deploy REASON` declares that
  this is the stack's first deploy; the summary says so.

Exit codes: 0 pass, 1 blocked or preview failed, 2 usage or engine error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.gate import budget, config_diff, settings  # noqa: E402 - needs the project on sys.path
from scripts.gate.summary import render_summary  # noqa: E402
from scripts.gate.verdict import SHARED_STACKS, GateResult, evaluate  # noqa: E402

__all__ = ["GateResult", "evaluate", "main", "render_summary"]


def run_preview(stack: str) -> tuple[dict[str, Any], list[str], bool, list[str]]:
    with tempfile.TemporaryDirectory() as scratch:
        event_log = Path(scratch) / "events.jsonl"
        command = [str(ROOT / "scripts" / "stack.sh"), "preview-json", stack, "--show-sames"]
        proc = subprocess.run(  # noqa: S603 - our own script with fixed arguments
            [*command, "--event-log", str(event_log)], capture_output=True, text=True, check=False
        )
        events = event_log.read_text().splitlines() if event_log.exists() else []
    sys.stderr.write(proc.stderr)
    try:
        digest = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        return {}, events, False, [f"preview printed no JSON: {proc.stdout.strip()[:500]}"]
    errors = [] if proc.returncode == 0 else [f"pulumi preview exited {proc.returncode}"]
    return digest, events, proc.returncode == 0, errors


def _config_json(root: Path, stack: str, config_file: Path) -> Mapping[str, Any] | None:
    command = [str(root / "scripts" / "stack.sh"), "run", stack, "config", "--json", "--show-secrets"]
    proc = subprocess.run(  # noqa: S603 - our own script with fixed arguments
        [*command, "--config-file", str(config_file), "--stack", stack],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return None
    parsed: Mapping[str, Any] = json.loads(proc.stdout)
    return parsed


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)  # noqa: S603,S607


def config_changes(stack: str, base_ref: str, root: Path = ROOT) -> list[config_diff.Change]:
    """The stack file's changes from `base_ref` (a git revision) to the working tree."""
    if _git(root, "rev-parse", "--verify", "--quiet", f"{base_ref}^{{commit}}").returncode != 0:
        raise config_diff.ConfigDiffError(f"`{base_ref}` is not a commit here: fetch the base branch first")
    project = str(yaml.safe_load((root / "Pulumi.yaml").read_text())["name"])
    head_text = (root / f"Pulumi.{stack}.yaml").read_text()
    shown = _git(root, "show", f"{base_ref}:Pulumi.{stack}.yaml")
    base_text = shown.stdout if shown.returncode == 0 else None  # a stack file new in this pull request

    def decrypt(which: str) -> Mapping[str, str] | None:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / f"Pulumi.{stack}.yaml"
            path.write_text(head_text if which == "head" else base_text or "")
            values = _config_json(root, stack, path)
        return None if values is None else config_diff.plaintext_digests(values, project)

    base = yaml.safe_load(base_text) if base_text else None
    return config_diff.diff(base, yaml.safe_load(head_text) or {}, project, decrypt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, choices=("dev", "staging", "production"))
    parser.add_argument("--summary", type=Path, help="append the Markdown summary here (fitted to --max-chars)")
    parser.add_argument("--allow-destructive", metavar="REASON", help="let a data-destroying plan pass")
    parser.add_argument("--allow-growth", metavar="REASON", help="let growth over scripts/gate/settings.yaml pass")
    parser.add_argument("--first-deploy", metavar="REASON", help="declare the stack's first deploy (no prior state)")
    parser.add_argument("--base-ref", metavar="REV", help="show the stack file's changes from this git revision")
    parser.add_argument("--max-chars", type=int, default=budget.LIMIT, help="longest summary written to --summary")
    parser.add_argument("--preview-json", type=Path, help="use this preview JSON instead of running preview")
    parser.add_argument("--event-log", type=Path, help="with --preview-json: the engine event log")
    args = parser.parse_args(argv)

    try:
        limits = settings.growth_limits(args.stack)
    except settings.SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    no_backend = args.stack in SHARED_STACKS and not args.preview_json and not os.environ.get("PULUMI_BACKEND_URL")
    if args.preview_json:
        digest = json.loads(args.preview_json.read_text())
        events = args.event_log.read_text().splitlines() if args.event_log else []
        preview_ok, errors = True, list[str]()
    elif no_backend and args.first_deploy is None:
        digest, events, preview_ok, errors = {}, [], True, []  # refused before previewing anything
    else:
        digest, events, preview_ok, errors = run_preview(args.stack)
    changes, config_error = None, None
    if args.base_ref:
        try:
            changes = config_changes(args.stack, args.base_ref)
        except config_diff.ConfigDiffError as error:
            config_error = str(error)
    result = evaluate(
        args.stack,
        digest,
        events,
        preview_ok,
        args.allow_destructive,
        errors,
        first_deploy=args.first_deploy,
        no_backend=no_backend,
        growth_limits=limits,
        allow_growth=args.allow_growth,
        config_changes=changes,
        config_error=config_error,
    )
    print(render_summary(result, limit=None))
    if args.summary:
        with args.summary.open("a") as out:
            out.write(render_summary(result, args.max_chars))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
