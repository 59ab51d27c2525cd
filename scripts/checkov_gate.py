"""checkov on the rendered manifests of every stack: no finding outside policies/checkov-waivers.yaml.

    venv/bin/python scripts/checkov_gate.py [--checkov PATH] [--stack STACK ...] [--keep DIR]
    make checkov        # the same, with checkov from its own pinned virtualenv (requirements-checkov.txt)

The manifests are the objects the program registers for each stack under Pulumi mocks
(tests/harness.py runs __main__.py with the stack's own Pulumi.<stack>.yaml): the inputs the engine
would send the Kubernetes provider, one file per object, Secret values blanked (checkov's Kubernetes
checks do not read them, and they must not reach a disk). The gate fails on a finding no waiver
covers, on a waiver no finding needs any more (so waivers do not outlive their reason), and on a
stack checkov parsed nothing of.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WAIVERS = ROOT / "policies" / "checkov-waivers.yaml"
STACKS = ("dev", "staging", "production")
# Where `make checkov` keeps checkov's virtualenv: outside the checkout, so fresh clones reuse it.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
DEFAULT_CHECKOV = CACHE / "support-platform" / "venvs" / "checkov" / "bin" / "checkov"
BLANK = "<generated at deploy time>"


@dataclass(frozen=True)
class Finding:
    stack: str
    check: str
    resource: str
    name: str  # the check's title
    file: str


@dataclass(frozen=True)
class Waiver:
    check: str
    resources: tuple[str, ...]  # checkov resource ids (Kind.namespace.name); fnmatch patterns
    stacks: tuple[str, ...]
    reason: str

    def pattern_for(self, finding: Finding) -> str | None:
        """The resource pattern that waives `finding`, if this waiver does."""
        if finding.check != self.check or finding.stack not in self.stacks:
            return None
        return next((p for p in self.resources if fnmatch.fnmatchcase(finding.resource, p)), None)


class WaiverError(ValueError):
    pass


def load_waivers(path: Path = WAIVERS) -> list[Waiver]:
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    waivers = []
    for index, entry in enumerate(document.get("waivers") or []):
        where = f"{path.name}: waivers[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"check", "resources", "stacks", "reason"}:
            raise WaiverError(f"{where}: needs exactly check, resources, stacks and reason")
        reason = str(entry["reason"]).strip()
        if len(reason) < 20:
            raise WaiverError(f"{where}: the reason must say why the finding is kept (a sentence, not a word)")
        stacks = tuple(entry["stacks"])
        if not stacks or not set(stacks) <= set(STACKS):
            raise WaiverError(f"{where}: stacks must be some of {', '.join(STACKS)}")
        resources = tuple(entry["resources"])
        if not resources or not all(isinstance(r, str) and r.count(".") >= 1 for r in resources):
            raise WaiverError(f"{where}: resources are checkov resource ids such as Deployment.support-app.api")
        if not str(entry["check"]).startswith(("CKV_K8S_", "CKV2_K8S_")):
            raise WaiverError(f"{where}: check must be a checkov Kubernetes check id (CKV_K8S_n, CKV2_K8S_n)")
        waivers.append(Waiver(str(entry["check"]), resources, stacks, reason))
    return waivers


# --- rendering ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Numbers as the manifests carry them: the engine's protobuf turns every int into a float."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def manifest(inputs: Mapping[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = _plain(dict(inputs))
    if obj.get("kind") == "Secret":
        for section in ("data", "stringData"):
            if isinstance(obj.get(section), dict):
                obj[section] = {key: BLANK for key in obj[section]}
    return obj


def render(stack: str, directory: Path) -> int:
    """Write every Kubernetes object the program registers for `stack`; returns how many."""
    sys.path.insert(0, str(ROOT))
    # The program under the test harness' mocks; imported by name, so the type checker of scripts/
    # does not descend into the tests.
    harness = importlib.import_module("tests.harness")
    run = harness.run_program(stack)
    if run.error is not None:
        raise RuntimeError(f"the {stack} program failed under mocks: {run.error}")
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for resource in run.resources:
        if not resource.type.startswith("kubernetes:") or "kind" not in resource.inputs:
            continue
        text = yaml.safe_dump(manifest(resource.inputs), sort_keys=False)
        (directory / f"{resource.name}.yaml").write_text(text, encoding="utf-8")
        count += 1
    return count


# --- checkov ---------------------------------------------------------------------------------


def run_checkov(checkov: Path, directory: Path) -> Mapping[str, Any]:
    proc = subprocess.run(  # noqa: S603 - the pinned checkov, on a directory this script wrote
        [str(checkov), "--directory", str(directory), "--framework", "kubernetes", "--output", "json",
         "--skip-download", "--soft-fail", "--compact"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"checkov exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    report = json.loads(proc.stdout)
    if isinstance(report, list):  # one report per framework; only kubernetes is asked for
        report = next((r for r in report if r.get("check_type") == "kubernetes"), {})
    if not isinstance(report, dict):
        raise RuntimeError("checkov printed no report")
    return report


def findings(stack: str, report: Mapping[str, Any]) -> list[Finding]:
    failed = (report.get("results") or {}).get("failed_checks") or []
    return [
        Finding(
            stack, str(f["check_id"]), str(f["resource"]), str(f.get("check_name", "")), str(f.get("file_path", ""))
        )
        for f in failed
    ]


@dataclass(frozen=True)
class Verdict:
    unwaived: list[Finding]
    waived: list[tuple[Finding, Waiver]]
    stale: list[tuple[Waiver, str, str]]  # (waiver, stack, resource pattern) nothing matched

    @property
    def ok(self) -> bool:
        return not self.unwaived and not self.stale


def judge(found: Iterable[Finding], waivers: Sequence[Waiver], stacks: Iterable[str]) -> Verdict:
    unwaived, waived = [], []
    used: set[tuple[int, str, str]] = set()
    for finding in found:
        match = next(((i, w, p) for i, w in enumerate(waivers) if (p := w.pattern_for(finding)) is not None), None)
        if match is None:
            unwaived.append(finding)
        else:
            index, waiver, pattern = match
            used.add((index, finding.stack, pattern))
            waived.append((finding, waiver))
    checked = set(stacks)
    stale = [
        (w, stack, pattern)
        for i, w in enumerate(waivers)
        for stack in w.stacks
        if stack in checked
        for pattern in w.resources
        if (i, stack, pattern) not in used
    ]
    return Verdict(unwaived, waived, stale)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkov", type=Path, default=DEFAULT_CHECKOV, help="the checkov executable")
    parser.add_argument("--stack", action="append", choices=STACKS, help="a stack to check (default: all)")
    parser.add_argument("--keep", type=Path, help="render into this directory and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    if not args.checkov.exists():
        print(
            f"error: {args.checkov} does not exist; run `make checkov` (it builds checkov's virtualenv)",
            file=sys.stderr,
        )
        return 2
    stacks = args.stack or list(STACKS)
    waivers = load_waivers()
    found: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="checkov-") as scratch:
        base = args.keep or Path(scratch)
        for stack in stacks:
            count = render(stack, base / stack)
            report = run_checkov(args.checkov, base / stack)
            summary = report.get("summary") or {}
            if not summary.get("resource_count"):
                print(f"error: checkov parsed no resource of the {count} manifests of {stack}", file=sys.stderr)
                return 1
            errors = summary.get("parsing_errors") or 0
            if errors:
                print(f"error: checkov could not parse {errors} manifests of {stack}", file=sys.stderr)
                return 1
            stack_findings = findings(stack, report)
            found += stack_findings
            print(
                f"{stack}: {count} manifests, {summary.get('resource_count')} resources, "
                f"{summary.get('passed', 0)} passed, {len(stack_findings)} failed before waivers"
            )
    verdict = judge(found, waivers, stacks)
    for finding, _ in verdict.waived:
        print(f"  waived   {finding.stack:<10} {finding.check:<11} {finding.resource}")
    for finding in verdict.unwaived:
        print(f"  FAILED   {finding.stack:<10} {finding.check:<11} {finding.resource} ({finding.file}): {finding.name}")
    for waiver, stack, pattern in verdict.stale:
        print(
            f"  STALE    {stack:<10} {waiver.check:<11} {pattern}: no finding needs this waiver any more; "
            f"remove it from {WAIVERS.name}"
        )
    if verdict.ok:
        print(f"checkov: no finding outside the {len(verdict.waived)} waived ones ({WAIVERS.relative_to(ROOT)})")
        return 0
    print(
        f"checkov: {len(verdict.unwaived)} findings without a waiver, {len(verdict.stale)} stale waivers. Fix the "
        f"manifests, or add a waiver with its reason to {WAIVERS.relative_to(ROOT)}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
