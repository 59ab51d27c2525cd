"""scripts/engine/ensure-engine.sh without building anything: piece checks and the missing-engine message."""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "engine" / "ensure-engine.sh"


def bash(snippet: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'source "{SCRIPT}"; set -euo pipefail; {snippet}'],  # noqa: S607
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "pieces").mkdir()
    return {
        **os.environ,
        "SUPPORT_PLATFORM_ENGINE_CACHE": str(tmp_path / "cache"),
        "SUPPORT_PLATFORM_ENGINE_PIECES": str(tmp_path / "pieces"),
    }


def write_piece(pieces: Path, name: str, content: bytes) -> str:
    with lzma.open(pieces / name, "wb") as out:
        out.write(content)
    return hashlib.sha256(content).hexdigest()


def test_a_piece_with_the_pinned_sha256_is_unpacked_into_the_cache_only(env: dict[str, str]) -> None:
    pieces = Path(env["SUPPORT_PLATFORM_ENGINE_PIECES"])
    digest = write_piece(pieces, "tool.xz", b"#!/bin/sh\necho ok\n")
    proc = bash(f'mkdir -p "$BIN_DIR"; unpack_piece tool.xz {digest} pulumi-resource-tool; echo "$BIN_DIR"', env)
    assert proc.returncode == 0, proc.stderr
    installed = Path(proc.stdout.strip()) / "pulumi-resource-tool"
    assert installed.read_bytes() == b"#!/bin/sh\necho ok\n"
    assert os.access(installed, os.X_OK)
    assert str(installed).startswith(env["SUPPORT_PLATFORM_ENGINE_CACHE"])
    assert not (ROOT / "pulumi-resource-tool").exists()


def test_a_piece_whose_sha256_differs_is_refused_and_not_installed(env: dict[str, str]) -> None:
    pieces = Path(env["SUPPORT_PLATFORM_ENGINE_PIECES"])
    write_piece(pieces, "tool.xz", b"tampered")
    proc = bash(f'mkdir -p "$BIN_DIR"; unpack_piece tool.xz {"0" * 64} pulumi-resource-tool; echo "$BIN_DIR"', env)
    assert proc.returncode != 0
    assert "sha256 mismatch" in proc.stderr and "refusing it" in proc.stderr
    bin_dir = Path(env["SUPPORT_PLATFORM_ENGINE_CACHE"]) / "v3.259.0" / "bin"
    assert list(bin_dir.iterdir()) == []


def test_pinned_pieces_match_the_shared_engine_readme() -> None:
    readme = ROOT.parent / "shared" / "engine" / "README.md"
    if not readme.exists():
        pytest.skip("no shared/engine beside the project")
    text = readme.read_text()
    script = SCRIPT.read_text()
    for key in ("PYTHON_HOST", "RANDOM", "DOCKER"):
        piece = next(line.split("=", 1)[1] for line in script.splitlines() if line.startswith(f"{key}_PIECE="))
        sha = next(line.split("=", 1)[1] for line in script.splitlines() if line.startswith(f"{key}_SHA256="))
        assert f"`{piece}`" in text and sha in text, key


def test_without_pulumi_go_or_pieces_it_says_what_is_missing_and_how_to_install(
    env: dict[str, str], tmp_path: Path
) -> None:
    # A PATH with the shell tools the script uses, but neither go nor pulumi.
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("bash", "sed", "grep", "sha256sum", "cut", "cat", "mkdir", "dirname", "basename", "awk", "flock"):
        found = shutil.which(name)
        if found:
            (tools / name).symlink_to(found)
    proc = subprocess.run([str(SCRIPT)], env={**env, "PATH": str(tools)}, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "go is not on PATH" in proc.stderr
    assert "missing: cli python-host kubernetes random docker" in proc.stderr
    assert "no prebuilt piece in" in proc.stderr
    assert "install the official Pulumi CLI v3.259.0" in proc.stderr
