"""A private copy of the project for a test or a benchmark: what git tracks, never a checkout's state.

    from scripts.project_copy import copy_sources
    copy_sources(destination)   # components/, policies/, scripts/, the program and its stack files

The copy holds the tracked files plus new ones git does not ignore, so a checkout's own state
(.pulumi-state/, rendered/, virtualenvs, caches) never reaches a copy. Stack files come as git's
index holds them: `pulumi` writes an encryption salt and encrypted values into the working copy when
someone runs a stack with their own passphrase, and those must not leak into a copy that runs with
another one (stage a stack-file change to have it copied).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "Makefile", "requirements.txt", "requirements-dev.txt")
STACK_FILES = ("Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.production.yaml")
PROJECT_DIRS = ("components", "policies", "scripts")


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)  # noqa: S603, S607


def project_sources() -> list[str]:
    """Relative paths of the files a copy holds (stack files apart)."""
    listed = _git("ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *PROJECT_FILES, *PROJECT_DIRS)
    if listed.returncode == 0:
        return sorted(name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file())
    # Not a git checkout (an unpacked archive): the tree is the source, without local state.
    found = []
    for name in (*PROJECT_FILES, *PROJECT_DIRS):
        for path in [ROOT / name] if (ROOT / name).is_file() else sorted((ROOT / name).rglob("*")):
            parts = path.relative_to(ROOT).parts
            if path.is_file() and "venv" not in parts and "__pycache__" not in parts:
                found.append(str(path.relative_to(ROOT)))
    return found


def stack_file_text(name: str) -> str:
    staged = _git("show", f":{name}")
    return staged.stdout if staged.returncode == 0 else (ROOT / name).read_text()


def copy_sources(destination: Path) -> None:
    for name in project_sources():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    for name in STACK_FILES:
        (destination / name).write_text(stack_file_text(name))
