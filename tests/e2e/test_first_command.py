"""scripts/stack.sh is a first command: on a fresh clone it makes its own virtualenvs, or says why not.

The pinned CLI (v3.259.0) waits forever when the policy pack's virtualenv is missing: its policy
proxy is never told that the pack failed to start (pulumi/pulumi#24492). stack.sh therefore prepares
both virtualenvs before it starts the CLI.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import copy_project

# Creating the pack's virtualenv (pip, cache warm or not) plus one dev preview with the pack. The hang
# this guards against never ends, so a generous bound still tells the two apart on a busy machine.
FIRST_PREVIEW_BOUND_S = 420


def stack_sh(root: Path, env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [str(root / "scripts" / "stack.sh"), *args],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"stack.sh {' '.join(args)} did not finish within {timeout} s:\n{expired.stdout!r}")


@pytest.mark.engine
def test_preview_dev_is_the_first_command_of_a_fresh_clone(tmp_path: Path, engine_bin: Path) -> None:
    project = copy_project(tmp_path, engine_bin, pack_virtualenv=False)
    pack_venv = project.root / "policies" / "venv"
    assert not pack_venv.exists()

    proc = stack_sh(project.root, project.env, "preview", "dev", timeout=FIRST_PREVIEW_BOUND_S)

    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Policy Packs run" in proc.stdout and "support-platform-guardrails" in proc.stdout, proc.stdout[-3000:]
    assert (pack_venv / ".installed").is_file()
    assert (pack_venv / "bin" / "python").exists()


@pytest.mark.integration
def test_a_pack_virtualenv_that_cannot_be_made_fails_fast_naming_the_command(tmp_path: Path) -> None:
    # No engine needed: the script must stop before it would start the CLI.
    project = copy_project(tmp_path, Path("/nonexistent-engine"), pack_virtualenv=False)
    offline = tmp_path / "no-packages"
    offline.mkdir()
    env = {**project.env, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(offline), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    proc = stack_sh(project.root, env, "preview", "dev", timeout=180)

    assert proc.returncode != 0
    assert "could not prepare policies/venv" in proc.stderr, proc.stderr[-3000:]
    assert "pip install -r policies/requirements.txt" in proc.stderr
    assert "Previewing update" not in proc.stdout
    assert not (project.root / "policies" / "venv" / ".installed").exists()
