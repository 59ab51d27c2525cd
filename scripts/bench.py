"""Benchmark of the engine paths users wait on; prints figures, asserts nothing.

    venv/bin/python scripts/bench.py [--runs 5]        # or: make bench

Side by side, in one run, the median wall time of:
- `pulumi preview` of production with the policy pack (what a pull request waits for);
- the same preview with a trivial one-policy pack (what any pack costs: starting its process);
- the same preview without a pack;
- the preview of an empty program that loads the same providers (the engine's floor);
- `make up` on dev when everything is installed and nothing changed (the inner loop).
Then the per-resource figures the goals are stated in: the program's cost over the floor per
resource (goal: the preview without a pack within 15 % of floor + 10 ms x resources) and the pack's
cost over the trivial pack, in all and per policy x resource (goal: at most 0.4 s).
Everything runs on a private copy of the project (scripts/project_copy.py) with its own file backend.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.pin_images import file_path, with_value  # noqa: E402 - needs the project root on sys.path
from scripts.project_copy import copy_sources  # noqa: E402

# Production names the api's release tag until a release pins it (`make pin-images`); the benchmark
# previews it as released, with a stand-in digest no registry serves (a preview pulls nothing).
BENCH_API_IMAGE = (
    "ghcr.io/support-platform/api:1.4.0@sha256:" + hashlib.sha256(b"support-platform bench stand-in").hexdigest()
)
# Benchmark stand-ins for the external secrets production requires.
BENCH_SECRETS = {"llmApiKey": "sk-bench-not-a-secret", "alertWebhookUrl": "https://hooks.example.test/bench"}
ENGINE_MS_PER_RESOURCE = 10  # the engine's own marginal cost, measured by growing a program (issue #16)
PREVIEW_SLACK = 0.15
PACK_BUDGET_S = 0.4

EMPTY_PROGRAM = '''"""The floor: the providers the platform loads, and nothing else."""
import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

k8s.Provider("k8s", context="support-production", enable_server_side_apply=True)
random.RandomPassword("probe", length=24, special=False)
pulumi.export("ok", True)
'''

TRIVIAL_PACK = '''"""A pack of one policy that looks at nothing: the cost of having a pack at all."""
from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy

PolicyPack(
    name="bench-trivial",
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=[ResourceValidationPolicy(name="nothing", description="Looks at nothing.", validate=lambda a, r: None)],
)
'''


def engine_bin() -> str:
    proc = subprocess.run(  # noqa: S603 - our own script
        [str(ROOT / "scripts" / "engine" / "ensure-engine.sh")], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip().splitlines()[-1]


def copy_project(scratch: Path) -> Path:
    root = scratch / "project"
    root.mkdir()
    copy_sources(root)
    production = root / "Pulumi.production.yaml"
    production.write_text(with_value(production.read_text(), file_path("app.services.api.image"), BENCH_API_IMAGE))
    (root / "venv").symlink_to(ROOT / "venv")
    (root / "policies" / "venv").symlink_to(ROOT / "policies" / "venv")
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


def trivial_pack(scratch: Path) -> Path:
    root = scratch / "trivial-pack"
    root.mkdir()
    (root / "PulumiPolicy.yaml").write_text(
        "description: bench\nruntime:\n  name: python\n  options:\n    virtualenv: venv\nversion: 0.0.1\n"
    )
    (root / "__main__.py").write_text(TRIVIAL_PACK)
    (root / "venv").symlink_to(ROOT / "policies" / "venv")
    return root


def run(command: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> str:
    proc = subprocess.run(command, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    run(command, cwd, env)
    return time.perf_counter() - start


def median_of(runs: int, action: Callable[[], float]) -> tuple[float, list[float]]:
    action()  # warm-up: plugin caches, Python bytecode, the pack's first start
    samples = [action() for _ in range(runs)]
    return statistics.median(samples), samples


def preview_steps(stack_sh: str, project: Path, env: dict[str, str]) -> int:
    """Resources the production preview registers (its steps, the stack itself apart)."""
    preview = [stack_sh, "run", "production", "preview", "--json", "--stack", "production"]
    document = json.loads(run(preview, project, env))
    return sum(1 for step in document.get("steps", []) if step.get("type") != "pulumi:pulumi:Stack")


def policy_count() -> int:
    sys.path.insert(0, str(ROOT / "policies"))
    from support_policies import all_policies  # noqa: PLC0415 - the pack's own package, found only here

    return len(all_policies())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per case (after one warm-up)")
    args = parser.parse_args(argv)

    bin_dir = engine_bin()
    with tempfile.TemporaryDirectory(prefix="support-bench-") as tmp:
        scratch = Path(tmp)
        project, floor, trivial = copy_project(scratch), empty_project(scratch), trivial_pack(scratch)
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
            run(cmd, project, env, stdin=value)
        run(["pulumi", "stack", "init", "bench", "--secrets-provider", "passphrase"], floor, env)
        resources = preview_steps(stack_sh, project, env)

        no_pack = [stack_sh, "run", "production", "preview", "--stack", "production"]
        cases: list[tuple[str, list[str], Path]] = [
            ("preview production, policy pack", [stack_sh, "preview", "production"], project),
            ("preview production, trivial pack", [*no_pack, "--policy-pack", str(trivial)], project),
            ("preview production, no pack", no_pack, project),
            ("preview empty program (floor)", ["pulumi", "preview", "--stack", "bench"], floor),
        ]
        results: dict[str, tuple[float, list[float]]] = {}
        for label, command, cwd in cases:
            results[label] = median_of(args.runs, functools.partial(timed, command, cwd, env))
        run([stack_sh, "up", "dev"], project, env)  # the first up creates; a warm make up changes nothing
        up = median_of(args.runs, lambda: timed(["make", "--no-print-directory", "up"], project, env))
        results["make up (dev, warm, no change)"] = up

    floor_s = results["preview empty program (floor)"][0]
    print(f"\nmedian of {args.runs} runs after one warm-up ({os.cpu_count()} cores)")
    print(f"{'case':<36} {'median s':>9} {'x floor':>8}   samples")
    for label, (median, samples) in results.items():
        shown = " ".join(f"{s:.2f}" for s in samples)
        print(f"{label:<36} {median:>9.2f} {median / floor_s:>8.2f}   {shown}")

    policies = policy_count()
    with_pack = results["preview production, policy pack"][0]
    trivial_s = results["preview production, trivial pack"][0]
    without = results["preview production, no pack"][0]
    target = floor_s + ENGINE_MS_PER_RESOURCE / 1000 * resources
    pack_cost = with_pack - trivial_s
    print(f"\nproduction preview: {resources} resources, {policies} policies")
    print(
        f"program over the floor: {(without - floor_s) * 1000 / resources:.1f} ms a resource; "
        f"preview without a pack {without:.2f} s vs floor + {ENGINE_MS_PER_RESOURCE} ms x resources = {target:.2f} s "
        f"({without / target - 1:+.0%}, goal within {PREVIEW_SLACK:.0%})"
    )
    print(
        f"policy pack over a trivial pack: {pack_cost:+.2f} s "
        f"({pack_cost * 1e6 / (policies * resources):.0f} us a policy x resource; goal at most {PACK_BUDGET_S} s); "
        f"any pack at all: {trivial_s - without:+.2f} s"
    )
    print(f"make up (dev, warm): {results['make up (dev, warm, no change)'][0]:.2f} s (goal at most 5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
