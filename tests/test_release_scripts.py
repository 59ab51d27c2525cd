"""The pull-request gate and the rollback command, on engine output shaped like the CLI's own.

The fixtures follow the CLI v3.259.0 structures: `display.PreviewDigest`/`PreviewStep` for
`pulumi preview --json`, `apitype.EngineEvent`/`PolicyEvent` for `--event-log` lines, and
`updateInfoJSON`/`configValueJSON` for `pulumi stack history --json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts import pr_gate, rollback

URN = (
    "urn:pulumi:production::support-platform::support:platform:Platform$support:app:AppTier$support:app:Service${}::{}"
)


def step(op: str, kind: str, name: str, old: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    resource_type = f"kubernetes:{kind}"
    state = {"type": resource_type, "urn": URN.format(resource_type, name), "custom": True}
    raw: dict[str, Any] = {"op": op, "urn": URN.format(resource_type, name), **extra}
    if op != "create":
        raw["oldState"] = {**state, **(old or {})}
    if op != "delete":
        raw["newState"] = state
    return raw


def policy_event(policy: str, level: str, name: str, message: str) -> str:
    event = {
        "sequence": 7,
        "timestamp": 1763780000,
        "policyEvent": {
            "resourceUrn": URN.format("kubernetes:apps/v1:Deployment", name),
            "message": message,
            "color": "never",
            "policyName": policy,
            "policyPackName": "support-platform-guardrails",
            "policyPackVersion": "0.1.0",
            "policyPackVersionTag": "0.1.0",
            "enforcementLevel": level,
        },
    }
    return json.dumps(event)


CLEAN_PLAN = {
    "steps": [
        step("create", "apps/v1:Deployment", "api-deployment"),
        step("create", "apps/v1:Deployment", "web-deployment"),
        step("update", "core/v1:ConfigMap", "api-env", detailedDiff={}),
        step("same", "core/v1:Service", "api-service"),
    ],
    "changeSummary": {"create": 2, "update": 1, "same": 1},
}


def test_a_plan_without_data_loss_passes_and_is_summarised() -> None:
    events = [policy_event("container-resources", "advisory", "api-deployment", 'Deployment "api": no CPU limit')]
    result = pr_gate.evaluate("production", CLEAN_PLAN, events, preview_ok=True, override=None)
    assert result.passed and result.blocked == []
    summary = pr_gate.render_summary(result)
    assert "gate passed" in summary
    assert "| `kubernetes:apps/v1:Deployment` | 2 |  |  |  |" in summary
    assert "| `kubernetes:core/v1:ConfigMap` |  | 1 |  |  |" in summary
    assert "| **total** | 2 | 1 |  |  |" in summary
    assert "0 mandatory and 1 advisory" in summary
    assert "advisory `container-resources` on `api-deployment`" in summary


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (step("replace", "apps/v1:StatefulSet", "postgres"), "StatefulSet"),
        (step("delete", "core/v1:PersistentVolumeClaim", "data-postgres-0"), "PersistentVolumeClaim"),
        (step("delete-replaced", "core/v1:Namespace", "app-namespace"), "Namespace"),
        (
            step("replace", "apiextensions.k8s.io/v1:CustomResourceDefinition", "certificates"),
            "CustomResourceDefinition",
        ),
        (
            step("replace", "core/v1:Secret", "api-secrets", {"inputs": {"stringData": "[secret]"}}),
            "Secret holding data",
        ),
        (step("delete", "core/v1:ConfigMap", "api-env", {"protect": True}), "protected resource"),
    ],
)
def test_a_plan_that_would_lose_data_is_blocked_unless_overridden(raw: dict[str, Any], why: str) -> None:
    plan = {"steps": [*CLEAN_PLAN["steps"], raw]}
    blocked = pr_gate.evaluate("production", plan, [], preview_ok=True, override=None)
    assert not blocked.passed
    assert [w for _, w in blocked.blocked] == [why]
    assert f"{why} `" in pr_gate.render_summary(blocked)
    allowed = pr_gate.evaluate("production", plan, [], preview_ok=True, override="data migrated by hand")
    assert allowed.passed
    assert "Allowed by override: data migrated by hand" in pr_gate.render_summary(allowed)


def test_replacing_an_empty_secret_or_updating_a_statefulset_is_not_data_loss() -> None:
    plan = {
        "steps": [
            step("replace", "core/v1:Secret", "tls-placeholder", {"inputs": {}, "outputs": {}}),
            step("update", "apps/v1:StatefulSet", "postgres"),
        ]
    }
    assert pr_gate.evaluate("staging", plan, [], preview_ok=True, override=None).passed


def test_a_failed_preview_fails_the_gate_even_with_an_override() -> None:
    digest = {"diagnostics": [{"message": "error: support-platform:app.services.api.image: ...", "severity": "error"}]}
    events = [policy_event("pss-run-as-non-root", "mandatory", "api-deployment", "runAsUser is 0")]
    result = pr_gate.evaluate("staging", digest, events, preview_ok=False, override="anything")
    assert not result.passed
    summary = pr_gate.render_summary(result)
    assert "**Preview failed**" in summary and "support-platform:app.services.api.image" in summary
    assert "1 mandatory" in summary


def test_gate_command_reads_saved_output_writes_the_summary_and_sets_the_exit_code(tmp_path: Path) -> None:
    plan = tmp_path / "preview.json"
    plan.write_text(json.dumps({"steps": [step("replace", "apps/v1:StatefulSet", "postgres")]}))
    events = tmp_path / "events.jsonl"
    events.write_text(policy_event("replica-spreading", "advisory", "api-deployment", "no spread") + "\n")
    summary = tmp_path / "summary.md"
    args = ["--stack", "production", "--preview-json", str(plan), "--event-log", str(events), "--summary", str(summary)]
    assert pr_gate.main(args) == 1
    assert pr_gate.main([*args, "--allow-destructive", "reviewed"]) == 0
    text = summary.read_text()
    assert text.count("### ") == 2 and "gate blocked" in text and "gate passed" in text


# --- rollback ----------------------------------------------------------------------------------


def update(version: int, result: str = "succeeded", kind: str = "update", image: str = "api:1.4.0") -> dict[str, Any]:
    app = {"services": {"api": {"image": f"ghcr.io/support-platform/{image}"}, "web": {"image": "nginx:1.27"}}}
    return {
        "version": version,
        "kind": kind,
        "startTime": f"2026-11-2{version}T10:00:00Z",
        "message": f"deploy {version}",
        "environment": {},
        "config": {
            "support-platform:app": {"value": json.dumps(app), "objectValue": app, "secret": False},
            "support-platform:environment": {"value": "production", "secret": False},
            "support-platform:llmApiKey": {"secret": True},
        },
        "result": result,
    }


HISTORY = [update(1), update(2, image="api:1.5.0"), update(3, result="failed"), update(4, kind="refresh")]


def test_history_lists_version_result_and_image_versions() -> None:
    listing = rollback.render_history(HISTORY)
    lines = listing.splitlines()
    assert len(lines) == 5
    assert "succeeded" in lines[1] and "api=api:1.4.0 web=nginx:1.27" in lines[1]
    assert "api=api:1.5.0" in lines[2] and "failed" in lines[3]


@pytest.mark.parametrize(
    ("version", "error"),
    [
        (3, "version 3 failed: its configuration never deployed cleanly"),
        (4, "version 4 was a refresh, not an update"),
        (9, "version 9 is not in the stack's history (versions: 1, 2, 3, 4)"),
    ],
)
def test_rollback_refuses_what_cannot_be_restored(version: int, error: str) -> None:
    with pytest.raises(rollback.RollbackError, match=error.replace("(", r"\(").replace(")", r"\)")):
        rollback.choose(HISTORY, version)
    assert rollback.choose(HISTORY, 1)["version"] == 1


def test_restored_document_keeps_unchanged_ciphertext_and_re_encrypts_changed_secrets() -> None:
    current = {
        "encryptionsalt": "v1:salt",
        "config": {
            "support-platform:environment": "production",
            "support-platform:llmApiKey": {"secure": "v1:cipher-of-old-key"},
            "support-platform:alertWebhookUrl": {"secure": "v1:cipher-of-hook"},
            "support-platform:secrets": {"rotation": 2},
        },
    }
    target = {
        "support-platform:environment": {"value": "production", "secret": False},
        "support-platform:app": {"value": "{}", "objectValue": {"services": {}}, "secret": False},
        "support-platform:llmApiKey": {"value": "sk-old", "secret": True},
        "support-platform:alertWebhookUrl": {"value": "https://hooks.example/old", "secret": True},
    }
    plain_now = {
        "support-platform:llmApiKey": "sk-old",
        "support-platform:alertWebhookUrl": "https://hooks.example/new",
    }
    document, to_encrypt = rollback.restored_document(current, target, plain_now)
    assert document["encryptionsalt"] == "v1:salt"
    assert document["config"]["support-platform:llmApiKey"] == {"secure": "v1:cipher-of-old-key"}
    assert "support-platform:alertWebhookUrl" not in document["config"]
    assert to_encrypt == {"support-platform:alertWebhookUrl": "https://hooks.example/old"}
    assert document["config"]["support-platform:app"] == {"services": {}}
    # Keys that the target update did not have are gone: the restore is the whole configuration.
    assert "support-platform:secrets" not in document["config"]
    assert "sk-old" not in json.dumps(document)


def test_file_backend_history_is_numbered_by_position_oldest_first() -> None:
    # The file backend lists the newest update first and records version 0 for every entry.
    newest_first = [{**update(3, image="api:1.6.0"), "version": 0}, {**update(2), "version": 0}]
    listed = rollback.numbered([*newest_first, {**update(1), "version": 0}])
    assert [u["version"] for u in listed] == [1, 2, 3]
    assert "api:1.6.0" in rollback.image_versions(listed[-1]["config"])
    # Numbered history (Pulumi Cloud) keeps its own numbers.
    assert [u["version"] for u in rollback.numbered([update(7), update(5)])] == [5, 7]


def test_a_secret_object_is_not_guessed_at() -> None:
    target = {"support-platform:app": {"value": "{}", "objectValue": {}, "secret": True}}
    with pytest.raises(rollback.RollbackError, match="secret object"):
        rollback.restored_document({"config": {}}, target, {})


def test_restore_needs_the_secret_values_of_the_target() -> None:
    target = {"support-platform:llmApiKey": {"secret": True}}
    with pytest.raises(rollback.RollbackError, match="no value for secret support-platform:llmApiKey"):
        rollback.restored_document({"config": {}}, target, {})


def test_pending_operations_name_the_recovery_command_of_the_cli() -> None:
    urn = "urn:pulumi:staging::support-platform::kubernetes:apps/v1:Deployment::agent"
    creating = rollback.pending_message("staging", [{"type": "creating", "resource": {"urn": urn}}])
    assert "`pulumi refresh --stack staging --clear-pending-creates`" in creating
    assert f"creating {urn}" in creating and "--import-pending-creates" in creating
    assert "`pulumi cancel --stack staging --yes`" in creating
    updating = rollback.pending_message("staging", [{"type": "updating", "resource": {"urn": urn}}])
    assert "`pulumi refresh --stack staging`" in updating and "clear-pending-creates" not in updating


def test_rollback_names_the_backup_taken_before_the_migration_it_leaves_in_place() -> None:
    job = {
        "type": "kubernetes:batch/v1:Job",
        "outputs": {
            "metadata": {
                "name": "postgres-backup-pre-migration-0123456789ab",
                "annotations": {
                    "support-platform.io/backup-label": "pre-migration-0123456789ab",
                    "support-platform.io/backup-claim": "support-data/postgres-backups",
                },
            }
        },
    }
    migration = {"type": "kubernetes:batch/v1:Job", "outputs": {"metadata": {"name": "api-migrations-1"}}}
    backups = rollback.pre_migration_backups([migration, job, {"type": "kubernetes:core/v1:Secret"}])
    assert backups == [("pre-migration-0123456789ab", "support-data/postgres-backups")]
    note = rollback.schema_note(5, 3, backups)
    assert "does not roll back the database schema that version 5's migration left" in note
    assert "label pre-migration-0123456789ab, on claim support-data/postgres-backups" in note
    assert "no pre-migration backup is recorded" in rollback.schema_note(5, 3, [])
