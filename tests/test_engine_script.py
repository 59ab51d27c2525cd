"""scripts/engine/ensure-engine.sh without building anything: piece checks and the missing-engine message."""

from __future__ import annotations

import hashlib
import lzma
import os
import re
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


PIECE_SCRIPTS = (
    SCRIPT,
    ROOT / "scripts" / "cluster" / "ensure-cluster.sh",
    ROOT / "scripts" / "go-tool.sh",
)


def pinned_pieces() -> dict[str, str]:
    """piece file -> sha256, as the scripts pin them (NAME_PIECE=/NAME_SHA256= pairs, bin=piece=sha triples,
    piece=/piece_sha256= pairs)."""
    pins: dict[str, str] = {}
    for script in PIECE_SCRIPTS:
        text = script.read_text()
        for piece, sha in re.findall(r"=([\w.-]+\.xz)=([0-9a-f]{64})", text):
            pins[piece] = sha
        for name, piece in re.findall(r"^\s*(\w*?)_?PIECE=([\w.-]+\.xz)$", text, re.MULTILINE):
            sha = re.search(rf"^\s*{name}_SHA256=([0-9a-f]{{64}})$", text, re.MULTILINE)
            assert sha, f"{script.name}: {piece} has no sha256"
            pins[piece] = sha.group(1)
        for piece, sha in re.findall(r"piece=([\w.-]+\.xz)\s+piece_sha256=([0-9a-f]{64})", text):
            pins[piece] = sha
    return pins


def test_every_heavy_binary_has_a_pinned_piece() -> None:
    pieces = pinned_pieces()
    for binary in (
        "pulumi-v3.259.0",
        "pulumi-language-python-v3.259.0",
        "pulumi-resource-kubernetes-v4.25.0",
        "pulumi-resource-random-v4.21.1",
        "pulumi-resource-docker-v5.1.0",
        "kube-apiserver-v1.37.2",
        "kube-controller-manager-v1.37.2",
        "kube-scheduler-v1.37.2",
        "etcd-v3.7.3",
        "kwok-v0.8.0",
        "kwokctl-v0.8.0",
        "promtool-v0.305.0",
        "amtool-v0.28.1",
    ):
        assert f"{binary}-linux-amd64.xz" in pieces, binary


def test_pinned_pieces_match_the_shared_engine_readme() -> None:
    readme = ROOT.parent / "shared" / "engine" / "README.md"
    if not readme.exists():
        pytest.skip("no shared/engine beside the project")
    rows = dict(re.findall(r"^\| `([\w.-]+\.xz)` \|.*\| `([0-9a-f]{64})` \|$", readme.read_text(), re.MULTILINE))
    assert pinned_pieces() == {piece: sha for piece, sha in rows.items() if piece in pinned_pieces()}
    assert set(pinned_pieces()) == set(rows)


def test_a_component_comes_from_pieces_only_when_all_of_them_check_out(env: dict[str, str]) -> None:
    pieces = Path(env["SUPPORT_PLATFORM_ENGINE_PIECES"])
    good = write_piece(pieces, "a.xz", b"#!/bin/sh\necho a\n")
    write_piece(pieces, "b.xz", b"tampered")
    proc = bash(f'install_pieces both key1 "a=a.xz={good}" "b=b.xz={"0" * 64}"; echo "$STAMP_DIR"', env)
    assert proc.returncode != 0
    assert "sha256 mismatch" in proc.stderr
    missing = bash(f'install_pieces gone key1 "a=a.xz={good}" "c=c.xz={good}" || echo refused', env)
    assert missing.stdout.strip() == "refused" and "unpacking" not in missing.stderr
    ok = bash(f'install_pieces single key1 "a=a.xz={good}"; cat "$STAMP_DIR/single"; ls "$BIN_DIR"', env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["key1", "a"]


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


FAKE_PULUMI = """#!/bin/sh
echo "$*" >> "$CALLS"
if [ "$1 $2" = "plugin ls" ]; then
  printf 'kubernetes resource 4.25.0\\nrandom resource 4.21.1\\ndocker resource 5.1.0\\n'
fi
"""


def test_plugins_are_checked_once_then_known_by_their_fingerprint(env: dict[str, str], tmp_path: Path) -> None:
    """Warm runs skip `pulumi plugin ls` and the byte compare; a changed installed plugin is caught."""
    calls = tmp_path / "calls"
    home = tmp_path / "pulumi-home"
    env = {**env, "PULUMI_HOME": str(home), "CALLS": str(calls)}
    where = bash('echo "$BIN_DIR"; echo "$K8S_VERSION $RANDOM_VERSION $DOCKER_VERSION"', env)
    bin_line, versions = where.stdout.splitlines()
    bin_dir = Path(bin_line)
    bin_dir.mkdir(parents=True)
    (bin_dir / "pulumi").write_text(FAKE_PULUMI)
    (bin_dir / "pulumi").chmod(0o755)
    for name, version in zip(("kubernetes", "random", "docker"), versions.split(), strict=True):
        (bin_dir / f"pulumi-resource-{name}").write_text(f"provider {name}")
        plugin_dir = home / "plugins" / f"resource-{name}-v{version}"
        plugin_dir.mkdir(parents=True)
        (plugin_dir / f"pulumi-resource-{name}").write_text(f"provider {name}")

    def ensure() -> list[str]:
        proc = bash('ensure_plugins "$BIN_DIR/pulumi"', env)
        assert proc.returncode == 0, proc.stderr
        return calls.read_text().splitlines() if calls.exists() else []

    assert ensure() == ["plugin ls"]  # first time: listed and compared, identical
    assert ensure() == ["plugin ls"]  # warm: nothing asked
    (home / "plugins" / "resource-kubernetes-v4.25.0" / "pulumi-resource-kubernetes").write_text("another build")
    after = ensure()
    assert after[1] == "plugin ls"
    assert re.fullmatch(r"plugin install resource kubernetes 4\.25\.0 --file \S+ --reinstall", after[2]), after
    assert len(after) == 3
