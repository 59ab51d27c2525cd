"""The data tier on the real engine (file backend, dev renders): what the engine itself decides.

The guard against changes a StatefulSet cannot take reads the last update's outputs through the
engine; renames keep resources through aliases; production's pack refuses unprotected stores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Project

pytestmark = pytest.mark.engine


def data_patch(update: dict[str, Any]):  # type: ignore[no-untyped-def]
    def apply(current: dict[str, Any] | None) -> dict[str, Any]:
        merged = dict(current or {})
        for store, values in update.items():
            merged[store] = {**(merged.get(store) or {}), **values}
        return merged

    return apply


def preview_plan(project: Project, stack: str = "dev") -> dict[str, Any]:
    result = project.run("preview", stack, "--json")
    plan: dict[str, Any] = json.loads(result.stdout)
    return plan


def test_dev_renders_the_data_tier(project: Project) -> None:
    result = project.run("up", "dev")
    # Said before the engine waits on the Job: where its log is if the migration fails.
    assert (
        "before api rolls; if it fails the update stops there: kubectl logs --namespace support-app job/api-migrations-"
        in (result.stdout)
    )
    manifests = [yaml.safe_load(content) for content in project.rendered().values()]
    by_kind: dict[str, set[str]] = {}
    for manifest in manifests:
        by_kind.setdefault(manifest["kind"], set()).add(manifest["metadata"]["name"])
    assert {"postgres", "redis", "chroma"} <= by_kind["StatefulSet"]
    assert "postgres-backup" in by_kind["CronJob"]
    assert "postgres-backups" in by_kind["PersistentVolumeClaim"]
    assert "support-data-stores" in by_kind["PriorityClass"]
    assert any(name.startswith("api-migrations-") for name in by_kind["Job"])


def test_a_storage_change_a_statefulset_cannot_take_stops_before_anything_changes(project: Project) -> None:
    project.run("up", "dev")
    before = project.rendered()
    project.edit_stack("dev", "data", data_patch({"postgres": {"storage": {"size": "40Gi"}}}))
    result = project.run("preview", "dev", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # Read from the last update's dataShape output by the engine, before any resource is registered.
    assert "support-platform:data.postgres.storage.size" in output
    assert "resize the claim instead: kubectl --namespace support-data patch pvc data-postgres-0" in output
    up = project.run("up", "dev", check=False)
    assert up.returncode != 0 and "support-platform:data.postgres.storage.size" in up.stdout + up.stderr
    assert project.rendered() == before
    # The program stopped before registering anything. dev's up runs without a preview (scripts/stack.sh),
    # so the attempt is in the history, as a failed update that changed nothing.
    history = project.history("dev")
    assert len(history) == 2, history
    assert history[-1]["result"] == "failed", history[-1]
    assert not {k: v for k, v in (history[-1].get("resourceChanges") or {}).items() if k != "same"}, history[-1]


def rename_postgres(project: Project, keep_alias: bool) -> None:
    path = project.root / "components" / "data" / "data_tier.py"
    source = path.read_text()
    source = source.replace('"postgres": "postgres", "redis"', '"postgres": "postgresql", "redis"')
    if keep_alias:
        source = source.replace('{"postgres": (), "redis"', '{"postgres": ("postgres",), "redis"')
    path.write_text(source)


@pytest.mark.parametrize("keep_alias", [True, False], ids=["with-alias", "without-alias"])
def test_renaming_a_store_component_moves_it_with_an_alias(project: Project, keep_alias: bool) -> None:
    project.run("up", "dev")
    rename_postgres(project, keep_alias)
    plan = preview_plan(project)
    steps = plan.get("steps") or []
    changes = {(s["op"], s["urn"].rsplit("::", 1)[-1]) for s in steps if s["op"] != "same"}
    if keep_alias:
        # The engine follows the aliases: every resource is the same one, nothing to create or delete.
        assert set(plan["changeSummary"]) == {"same"}, plan["changeSummary"]
        assert not changes, changes
    else:
        # Without them the StatefulSet is a new resource and the old one is deleted: the data would go.
        assert ("create", "postgresql-statefulset") in changes, changes
        assert ("delete", "postgres-statefulset") in changes, changes


def test_production_refuses_unprotected_stores(project: Project) -> None:
    project.set_secrets("production")
    project.edit_stack("production", "data", lambda current: {**(current or {}), "protect": False})
    result = project.run("preview", "production", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "protect-stateful-resources" in output
    for name in ("postgres-statefulset", "redis-statefulset", "chroma-statefulset", "postgres-backups"):
        assert name in output, name
    assert "data-namespace" in output


def test_rendered_postgres_configuration_is_what_the_settings_say(project: Project, tmp_path: Path) -> None:
    project.edit_stack("dev", "data", data_patch({"postgres": {"parameters": {"max_connections": 321}}}))
    project.run("up", "dev")
    config_maps = [yaml.safe_load(c) for n, c in project.rendered().items() if "postgres-config" in n]
    assert len(config_maps) == 1
    assert "max_connections = 321" in config_maps[0]["data"]["postgresql.conf"]
