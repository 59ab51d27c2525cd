"""Benchmark of the engine paths users wait on; prints figures, asserts nothing.

    venv/bin/python scripts/bench.py [--runs 5]        # or: make bench

Side by side, in one run, the median wall time of:
- `pulumi preview` of production with the policy pack (what a pull request waits for);
- the same preview without the pack (the pack's cost is the difference);
- the preview of an empty program that loads the same providers (the engine's floor);
- `make up` on dev when everything is installed and nothing changed (the inner loop).
Everything runs on a copy of the project with its own file backend in a temporary directory.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.pin_images import file_path, with_value  # noqa: E402 - the project on sys.path first

# Production names the api's release tag until a release pins it (`make pin-images`); the benchmark
# previews it as released, with a stand-in digest no registry serves (a preview pulls nothing).
BENCH_API_IMAGE = (
    "ghcr.io/support-platform/api:1.4.0@sha256:" + hashlib.sha256(b"support-platform bench stand-in").hexdigest()
)
PROJECT_FILES = (
    "Pulumi.yaml",
    "Pulumi.dev.yaml",
    "Pulumi.production.yaml",
    "__main__.py",
    "Makefile",
    "requirements.txt",
    "requirements-dev.txt",
)
PROJECT_DIRS = ("components", "policies", "scripts")
# Benchmark stand-ins for the external secrets production requires.
BENCH_SECRETS = {"llmApiKey": "sk-bench-not-a-secret", "alertWebhookUrl": "https://hooks.example.test/bench"}

EMPTY_PROGRAM = '''"""The floor: the providers the platform loads, and nothing else."""
import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

k8s.Provider("k8s", context="support-production", enable_server_side_apply=True)
random.RandomPassword("probe", length=24, special=False)
pulumi.export("ok", True)
'''


def engine_bin() -> str:
    proc = subprocess.run(  # noqa: S603 - our own script
        [str(ROOT / "scripts" / "engine" / "ensure-engine.sh")], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip().splitlines()[-1]


def copy_project(scratch: Path) -> Path:
    root = scratch / "project"
    root.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, root / name)
    production = root / "Pulumi.production.yaml"
    production.write_text(with_value(production.read_text(), file_path("app.services.api.image"), BENCH_API_IMAGE))
    for name in PROJECT_DIRS:
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("venv", "__pycache__"))
    (root / "venv").symlink_to(ROOT / "venv")
    (root / "policies" / "venv").symlink_to(ROOT / "policies" / "venv")
    # The Makefile's stamps: the venvs exist already, so `make up` goes straight to the engine.
    return root


def empty_project(scratch: Path) -> Path:
    root = scratch / "empty"
    root.mkdir()
    (root / "Pulumi.yaml").write_text(
        "name: bench-floor\nruntime:\n  name: python\n  options:\n    toolchain: pip\n    virtualenv: venv\n"
    )
    (root / "__main__.py").write_text(EMPTY_PROGRAM)
    (root / "venv").symlink_to(ROOT / "venv")
    return root


def timed(command: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, check=False)  # noqa: S603
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


def median_of(runs: int, action: Callable[[], float]) -> tuple[float, list[float]]:
    action()  # warm-up: plugin caches, Python bytecode, the pack's first start
    samples = [action() for _ in range(runs)]
    return statistics.median(samples), samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per case (after one warm-up)")
    args = parser.parse_args(argv)

    bin_dir = engine_bin()
    with tempfile.TemporaryDirectory(prefix="support-bench-") as tmp:
        scratch = Path(tmp)
        project, floor = copy_project(scratch), empty_project(scratch)
        (scratch / "state").mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_") and k != "KUBECONFIG"}
        env.update(
            PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            PULUMI_BACKEND_URL=f"file://{scratch / 'state'}",
            PULUMI_CONFIG_PASSPHRASE="bench-only-not-a-secret",  # noqa: S106 - a throwaway stack
            PULUMI_SKIP_UPDATE_CHECK="true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
            PULUMI_IGNORE_AMBIENT_PLUGINS="true",
            KUBECONFIG=str(scratch / "no-kubeconfig"),  # previews must not find a real cluster
        )
        if "PULUMI_HOME" in os.environ:
            env["PULUMI_HOME"] = os.environ["PULUMI_HOME"]
        stack_sh = str(project / "scripts" / "stack.sh")
        for key, value in BENCH_SECRETS.items():
            cmd = [stack_sh, "run", "production", "config", "set", "--secret", key, "--stack", "production"]
            timed(cmd, project, env, stdin=value)
        timed(["pulumi", "stack", "init", "bench", "--secrets-provider", "passphrase"], floor, env)

        cases: list[tuple[str, list[str], Path]] = [
            ("preview production, policy pack", [stack_sh, "preview", "production"], project),
            (
                "preview production, no pack",
                [stack_sh, "run", "production", "preview", "--diff", "--stack", "production"],
                project,
            ),
            ("preview empty program (floor)", ["pulumi", "preview", "--stack", "bench"], floor),
        ]
        results: list[tuple[str, float, list[float]]] = []
        for label, command, cwd in cases:
            median, samples = median_of(args.runs, functools.partial(timed, command, cwd, env))
            results.append((label, median, samples))
        timed([stack_sh, "up", "dev"], project, env)  # the first up creates; make up warm changes nothing
        median, samples = median_of(args.runs, lambda: timed(["make", "--no-print-directory", "up"], project, env))
        results.append(("make up (dev, warm, no change)", median, samples))

    floor_time = results[2][1]
    print(f"\nmedian of {args.runs} runs after one warm-up ({os.cpu_count()} cores)")
    print(f"{'case':<36} {'median s':>9} {'x floor':>8}   samples")
    for label, median, samples in results:
        shown = " ".join(f"{s:.2f}" for s in samples)
        print(f"{label:<36} {median:>9.2f} {median / floor_time:>8.2f}   {shown}")
    with_pack, without_pack = results[0][1], results[1][1]
    print(f"\npolicy pack cost: {with_pack - without_pack:+.2f} s ({with_pack / without_pack:.2f}x the preview)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
