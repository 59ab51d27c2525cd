"""The project's figures, from commands: CI cold and warm, the unit suite, the benchmark.

    venv/bin/python scripts/figures.py [--cold] [--warm] [--unit] [--bench] [--write docs/performance.md]

- cold: `bash .ci/run` on a fresh clone of this checkout's HEAD, with `../shared` beside it and an empty
  HOME (no Go module or build cache, no engine, cluster, tool or pip cache; Debian packages as installed);
- warm: the same on a second fresh clone, reusing the caches the cold run filled (the usual CI case);
- unit: `make unit` in this checkout, three times (median);
- bench: `make bench`.
Each figure is printed as a Markdown table row with the date, the commit and the machine's cores;
`--write FILE` replaces the block between the `<!-- figures -->` markers of FILE with the new rows
(rows of measurements not taken this time are kept).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- figures -->", "<!-- /figures -->"


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, log: Path | None = None) -> tuple[float, str]:
    """Run to the end; with `log`, every output line is also written there, stamped with the seconds
    since the start (where the time of a long run goes)."""
    started = time.perf_counter()
    lines: list[str] = []
    with (
        subprocess.Popen(  # noqa: S603
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc,
        log.open("w") if log else open(os.devnull, "w") as sink,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            sink.write(f"{time.perf_counter() - started:7.1f} {line}")
            sink.flush()
    elapsed = time.perf_counter() - started
    output = "".join(lines)
    if proc.returncode != 0:
        sys.exit(f"figures: {' '.join(command)} failed after {elapsed:.0f} s:\n{output[-8000:]}")
    return elapsed, output


def commit() -> str:
    return subprocess.run(  # noqa: S603
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def fresh_clone(base: Path, shared: Path) -> Path:
    """A clone of HEAD with `shared` beside it, as CI sees main."""
    clone = base / "main"
    run(["git", "clone", "--quiet", str(ROOT), str(clone)], base)
    (base / "shared").symlink_to(shared)
    return clone


def ci_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "SUPPORT_PLATFORM_", "XDG_", "GO"))}
    env.update(HOME=str(home), CI="true")
    env.pop("KUBECONFIG", None)
    return env


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("cold", "warm", "unit", "bench"):
        parser.add_argument(f"--{name}", action="store_true")
    parser.add_argument("--write", type=Path, help="file whose <!-- figures --> block gets the rows")
    parser.add_argument("--logs", type=Path, help="directory for the CI runs' output, each line time-stamped")
    parser.add_argument("--from-logs", type=Path, help="take the CI figures from the logs an earlier --logs kept")
    args = parser.parse_args(argv)
    shared = (ROOT.parent / "shared").resolve()
    stamp = f"{datetime.date.today().isoformat()}, {commit()}, {os.cpu_count()} cores"
    rows: dict[str, str] = {}

    if args.cold or args.warm:
        with tempfile.TemporaryDirectory(prefix="support-figures-") as tmp:
            base = Path(tmp)
            home = base / "home"
            home.mkdir()
            env = ci_env(home)
            if args.cold:
                cold_base = base / "cold"
                cold_base.mkdir()
                seconds, _ = run(["bash", ".ci/run"], fresh_clone(cold_base, shared), env, _log(args.logs, "cold"))
                rows["CI cold"] = f"| `bash .ci/run`, cold (fresh clone, empty HOME) | {minutes(seconds)} | {stamp} |"
            if args.warm:
                if not args.cold:  # warm needs filled caches: fill them once, unmeasured
                    fill = base / "fill"
                    fill.mkdir()
                    run(["bash", ".ci/run"], fresh_clone(fill, shared), env)
                warm_base = base / "warm"
                warm_base.mkdir()
                seconds, _ = run(["bash", ".ci/run"], fresh_clone(warm_base, shared), env, _log(args.logs, "warm"))
                rows["CI warm"] = f"| `bash .ci/run`, warm (fresh clone, caches kept) | {minutes(seconds)} | {stamp} |"
            shutil.rmtree(home, ignore_errors=True)
    if args.from_logs:
        # Runs measured earlier with --logs: the last line's stamp is the run's length.
        for name, what in (("cold", "cold (fresh clone, empty HOME)"), ("warm", "warm (fresh clone, caches kept)")):
            log = args.from_logs / f"ci-{name}.log"
            text = log.read_text() if log.exists() else ""
            if "ci: make test passed" in text:
                seconds = float(text.strip().splitlines()[-1].split()[0])
                rows[f"CI {name}"] = f"| `bash .ci/run`, {what} | {minutes(seconds)} | {stamp}, from {log.name} |"
    if args.unit:
        samples = [run(["make", "--no-print-directory", "unit"], ROOT)[0] for _ in range(3)]
        rows["make unit"] = (
            f"| `make unit` (median of 3: {' '.join(f'{s:.0f}' for s in samples)} s) | "
            f"{statistics.median(samples):.0f} s | {stamp} |"
        )
    if args.bench:
        _, output = run(["make", "--no-print-directory", "bench"], ROOT)
        print(output)
        for line in output.splitlines():
            # The table's rows: "<case>   <median>   <x floor>   <samples>".
            case = re.match(r"((?:preview|make up) .+?)\s{2,}(\d+\.\d\d)\s", line)
            if case:
                label, median = case.groups()
                rows[f"bench {label}"] = f"| `make bench`: {label} | {median} s | {stamp} |"
            elif line.startswith(("program over", "policy pack over", "make up (dev, warm):")):
                rows[f"bench {line.split(':')[0]}"] = f"| `make bench`: {line} | | {stamp} |"

    for row in rows.values():
        print(row)
    if args.write:
        text = args.write.read_text()
        if START not in text or END not in text:
            sys.exit(f"figures: {args.write} has no {START} ... {END} block")
        head, rest = text.split(START, 1)
        block, tail = rest.split(END, 1)
        kept = {
            key: line
            for line in block.strip().splitlines()
            if line.startswith("| ") and not line.startswith("| what")
            for key in [_row_key(line)]
            if key not in {_row_key(r) for r in rows.values()}
        }
        table = ["| what | figure | measured |", "|---|---|---|", *kept.values(), *rows.values()]
        args.write.write_text(f"{head}{START}\n" + "\n".join(table) + f"\n{END}{tail}")
    return 0


def _log(directory: Path | None, name: str) -> Path | None:
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"ci-{name}.log"


def _row_key(row: str) -> str:
    return re.sub(r"\(median of 3:[^)]*\)", "", row.split("|")[1]).strip()


if __name__ == "__main__":
    sys.exit(main())
