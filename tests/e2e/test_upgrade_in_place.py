"""Nothing moves under the users' feet: a stack deployed by the program as it was before the tiers
were restructured previews, with the program as it is now, with zero replaces and zero deletes.

`make cluster-test`. The old program comes from the repository's own history (`git archive`), is
deployed as a staging stack to the throwaway control plane (the cluster fixture of
test_cluster.py), and the current tree then previews against that state. The preview's JSON steps
are read, not its text. The stack asks for a backup before every migration, so the one resource
whose parent the restructuring changed (the pre-migration backup Job, now the data tier's) is in
the state and has to be moved by its alias.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Project, copy_project, project_env
from tests.e2e.test_cluster import Cluster, cluster  # noqa: F401 - the module's own control plane

pytestmark = [pytest.mark.engine, pytest.mark.cluster]

# The last commit before the tiers were restructured (contracts, one kit, tiers side by side):
# the layout every stack deployed until then was registered with. Changing it changes what this
# test proves; it must stay an ancestor of the branch under test.
BEFORE_RESTRUCTURE = "77f84227eced0d3a47eda7d0e5528902c377a006"
# What moved: the pre-migration backup Job, from the app service's Migration to PostgreSQL's component.
MOVED_BACKUP_JOB = (
    "support:platform:Platform$support:data:DataTier$support:data:Postgres$kubernetes:batch/v1:Job",
    "api-migration-backup",
)
# A resource the engine keeps (its state, its live object): unchanged or updated in place.
KEPT_OPS = ("same", "update")
# What scripts/stack.sh hashes to decide whether the virtualenvs are ready.
VENV_REQUIREMENTS = ("requirements-dev.txt", "requirements.txt", "policies/requirements.txt")
CHANGING_OPS = {"replace", "create-replacement", "delete-replaced", "delete", "discard", "discard-replaced"}


def archived_tree(commit: str, destination: Path) -> Path:
    """The project as `commit` had it, from this checkout's history."""
    command = ["git", "-C", str(ROOT), "archive", "--format=tar", commit]
    proc = subprocess.run(command, capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.fail(
            f"commit {commit} (the program before the restructuring) is not in this checkout's history, so the "
            f"in-place upgrade cannot be proven: fetch the full history (git fetch --unshallow) and run again. "
            f"git said: {proc.stderr.decode(errors='replace').strip()}"
        )
    destination.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as archive:
        archive.extractall(destination, filter="data")
    return destination


def old_project(base: Path, engine_bin: Path) -> Project:
    """The archived tree as a project on its own file backend, with the current virtualenvs."""
    root = archived_tree(BEFORE_RESTRUCTURE, base / "project")
    # The linked virtualenvs were built from today's requirement files; the old wrapper keys its
    # "already installed" stamp on the files it finds, so it is given those (it would otherwise try to
    # rebuild a virtualenv that is not its own, and fail).
    for name in VENV_REQUIREMENTS:
        shutil.copyfile(ROOT / name, root / name)
    (root / "venv").symlink_to(ROOT / "venv")
    if (ROOT / "policies" / "venv").exists():
        (root / "policies" / "venv").symlink_to(ROOT / "policies" / "venv")
    (base / "state").mkdir()
    return Project(root, project_env(base, engine_bin))


def preview(project: Project) -> dict[str, Any]:
    """The preview's JSON digest, unchanged resources included (--show-sames)."""
    proc = project.run("preview-json", "staging", "--show-sames")
    digest: dict[str, Any] = json.loads(proc.stdout)
    assert digest.get("steps"), f"the preview listed no steps:\n{proc.stdout[-3000:]}"
    return digest


def short(urn: str) -> tuple[str, str]:
    parts = urn.split("::")
    return parts[2], parts[3]


def test_a_stack_deployed_before_the_restructuring_previews_without_replaces_or_deletes(
    tmp_path: Path,
    engine_bin: Path,
    cluster: Cluster,  # noqa: F811 - the fixture imported above
) -> None:
    before = old_project(tmp_path / "before", engine_bin)
    before.set_secrets("staging")
    for path, value in (
        ("target.context", cluster.context),
        ("target.kubeconfig", str(cluster.kubeconfig)),
        # A backup before every migration: the Job whose parent changed is then in the state.
        ("data.postgres.migrations.backupFirst", "true"),
    ):
        before.run("run", "staging", "config", "set", "--path", path, value, "--stack", "staging")
    deployed = before.run("up", "staging")
    assert "support-platform-guardrails" in deployed.stdout, "the policy pack did not run"
    exported = json.loads(before.run("run", "staging", "stack", "export", "--stack", "staging").stdout)
    # Not the engine's own default provider of the `pulumi` package (the previous dataShape is read
    # through it): a preview lists no step for it.
    old_urns = {r["urn"] for r in exported["deployment"]["resources"] if r["type"] != "pulumi:providers:pulumi"}
    old_job = [u for u in old_urns if u.endswith("::api-migration-backup")]
    assert old_job and "support:data:Migration$kubernetes:batch/v1:Job" in old_job[0], old_job

    # The current tree, on the same state and the same stack file (config, secrets' salt).
    (tmp_path / "now").mkdir()
    now = copy_project(tmp_path / "now", engine_bin)
    # stack.sh checks the virtualenvs against the requirement files, which copy_project leaves out.
    for name in ("requirements.txt", "requirements-dev.txt"):
        shutil.copy2(ROOT / name, now.root / name)
    now.env["PULUMI_BACKEND_URL"] = before.env["PULUMI_BACKEND_URL"]
    shutil.copy2(before.root / "Pulumi.staging.yaml", now.root / "Pulumi.staging.yaml")
    plan = preview(now)
    steps: list[dict[str, Any]] = plan["steps"]

    changing = sorted((s["op"], s["urn"]) for s in steps if s["op"] in CHANGING_OPS)
    assert changing == [], "the restructured program would replace or delete:\n" + "\n".join(map(str, changing))
    # Creates and in-place updates are what the program learned since that commit (files for
    # passwords, the web's nginx.conf, ...); the restructuring itself rendered byte-identical manifests.
    by_name = {short(s["urn"]): s for s in steps}
    job = by_name.get(MOVED_BACKUP_JOB)
    assert job is not None, f"the backup Job is not where the data tier registers it: {sorted(by_name)}"
    assert job["op"] in KEPT_OPS, job
    # Every resource of the old state is accounted for: kept at the same URN, or at a new one its alias
    # points from; none is left to be deleted.
    kept = {s["urn"] for s in steps if s["op"] in KEPT_OPS}
    assert old_urns - kept == {old_job[0]}, sorted(old_urns - kept)
