import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from components import cluster_reader

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Properties: CI never flips a coin (the same examples every run, no example database carried from
# run to run, so a red run is about the change it tested); a laptop keeps exploring new examples and
# remembers the failing ones. A failure found either way becomes an explicit @example in the test.
# Loaded here, before any test module builds its own `settings(...)`, which inherit from it.
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("explore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI", "").lower() in ("1", "true") else "explore")
)


@pytest.fixture
def docker_daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """DOCKER_HOST pointing at a socket that accepts connections: what the program checks before a build."""
    directory = tempfile.mkdtemp(prefix="dockerd-")  # short: unix socket paths are limited to ~100 bytes
    path = os.path.join(directory, "docker.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(8)
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        yield f"unix://{path}"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_ambient_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The program's preflight asks the cluster a stack targets: under mocks none may be found through this
    machine's kubeconfig, so every run sees none unless a test sets KUBECONFIG. (Unset, not pointed
    elsewhere: the kubernetes SDK copies KUBECONFIG into the provider's inputs.)"""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setattr(cluster_reader, "HOME_KUBECONFIG", tmp_path_factory.getbasetemp() / "no-kubeconfig")
