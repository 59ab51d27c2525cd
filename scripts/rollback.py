"""Roll a stack back to the configuration of an earlier update, as one command.

    venv/bin/python scripts/rollback.py --stack production              # list the history
    venv/bin/python scripts/rollback.py --stack production --to 12      # preview, ask, re-up
    venv/bin/python scripts/rollback.py --stack production --to 12 --yes

The program is the same; what changes between releases is the stack's configuration (image
digests, replicas, settings). `--to N` restores update N's configuration into Pulumi.<stack>.yaml
(secrets stay encrypted: an unchanged secret keeps its ciphertext, a changed one is re-encrypted by
`pulumi config set --secret` from stdin, never from the command line), shows the preview with the
policy pack, asks, and runs `pulumi up` with the message "rollback to version N". It refuses an
update that did not succeed or was not an update, and a stack with pending operations (an
interrupted update whose resources must be reconciled first).

A service the update built (`build` instead of `image`) is restored as the image that update
pushed, `image: repository@sha256:…`: rebuilding the build settings would build whatever the
context holds now, under the old tag. The digest comes from the program's own record, the
`builtImages` stack output (components/image_ledger.py), because the DIY backends keep no state
snapshot of earlier updates that a command can read (`pulumi stack export --version` is Pulumi
Cloud's). Everything here uses what every backend serves: `stack history`, `stack export` of the
current state and `stack output`. Put the `build` block back to build again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.image_ledger import KEEP, LEDGER_OUTPUT, image_before  # noqa: E402 - the project on sys.path first

STACK_SH = ROOT / "scripts" / "stack.sh"
PROJECT = "support-platform"


class RollbackError(Exception):
    """A refusal or failure, with a message that says what to do."""


def pulumi(stack: str, *args: str, stdin: str | None = None) -> str:
    """Run `pulumi <args>` in the project's environment (engine, backend, passphrase)."""
    proc = subprocess.run(  # noqa: S603 - our own script, arguments from this program
        [str(STACK_SH), "run", stack, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RollbackError(f"`pulumi {' '.join(args)}` failed:\n{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def numbered(updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Updates oldest first, each with a version number.

    Pulumi Cloud numbers updates; the file and bucket backends record none (every entry says 0) and
    list the newest first, so there the number is the position in history, oldest = 1, the same
    numbering `pulumi stack history` shows for a cloud stack.
    """
    if updates and all(int(u.get("version") or 0) == 0 for u in updates):
        return [{**u, "version": len(updates) - i} for i, u in enumerate(updates)][::-1]
    return sorted(updates, key=lambda u: int(u["version"]))


def history(stack: str, show_secrets: bool = False) -> list[dict[str, Any]]:
    # --page-size 0: every update, not the CLI's default last ten.
    args = ["stack", "history", "--json", "--page-size", "0", "--stack", stack]
    if show_secrets:
        args.append("--show-secrets")
    return numbered(json.loads(pulumi(stack, *args) or "[]"))


def config_value(entry: Mapping[str, Any]) -> Any:
    if "objectValue" in entry:
        return entry["objectValue"]
    return entry.get("value")


def image_versions(config: Mapping[str, Any]) -> str:
    """The images an update deployed, from its app settings: api=…:1.4.0 web=…@sha256:0d2d0b4f."""
    app = config.get(f"{PROJECT}:app")
    services = (config_value(app) or {}).get("services", {}) if isinstance(app, Mapping) else {}
    shown = []
    for name, service in sorted(services.items()):
        if not isinstance(service, Mapping):
            continue
        image = service.get("image") or (service.get("build") or {}).get("tag")
        if image:
            tail = str(image).rsplit("/", 1)[-1]
            shown.append(f"{name}={tail[:40]}")
    return " ".join(shown) or "-"


def render_history(updates: Sequence[Mapping[str, Any]]) -> str:
    lines = [f"{'version':>7}  {'started (UTC)':<20}  {'kind':<8}  {'result':<10}  {'images':<40}  message"]
    for update in updates:
        lines.append(
            f"{update['version']:>7}  {update.get('startTime', ''):<20}  {update.get('kind', ''):<8}  "
            f"{update.get('result', ''):<10}  {image_versions(update.get('config') or {}):<40}  "
            f"{' '.join(str(update.get('message', '')).split())[:60]}"
        )
    return "\n".join(lines)


def current_state(stack: str) -> dict[str, Any]:
    """The stack's current deployment (resources, pending operations): what every backend exports."""
    deployment: dict[str, Any] = json.loads(pulumi(stack, "stack", "export", "--stack", stack)).get("deployment") or {}
    return deployment


def pending_message(stack: str, operations: Sequence[Mapping[str, Any]]) -> str:
    """Why a stack with pending operations cannot be rolled back, and the command that recovers it.

    CLI v3.259.0: a non-interactive `pulumi refresh` clears pending updates and deletes but keeps
    pending creates, unless given --clear-pending-creates (drop them; the next up applies those
    objects again, and server-side apply adopts any the interrupted update did create) or
    --import-pending-creates URN ID (adopt them now). A CLI that was killed also leaves its lock on
    the file and bucket backends; `pulumi cancel` removes it.
    """
    listed = ", ".join(f"{op.get('type', '?')} {(op.get('resource') or {}).get('urn', '?')}" for op in operations)
    creates = any(op.get("type") == "creating" for op in operations)
    command = f"pulumi refresh --stack {stack}" + (" --clear-pending-creates" if creates else "")
    how = (
        "it drops the interrupted creates from the state (the next up applies them again) and refreshes the "
        "rest; `--import-pending-creates <urn> <id>` adopts them instead"
        if creates
        else "it reads the interrupted resources back from the cluster and clears the pending operations"
    )
    return (
        f"stack '{stack}' has {len(operations)} pending operation(s) from an interrupted update ({listed}). "
        f"Check those resources on the cluster, then recover the state with `{command}` "
        f"(scripts/stack.sh refresh {stack}{' --clear-pending-creates' if creates else ''}): {how}. "
        f"If the interrupted CLI left the stack locked ('the stack is currently locked'), and no update of it "
        f"is running, first release the lock with `pulumi cancel --stack {stack} --yes`. Then run the rollback again"
    )


def choose(updates: Sequence[Mapping[str, Any]], version: int) -> Mapping[str, Any]:
    target = next((u for u in updates if int(u["version"]) == version), None)
    if target is None:
        known = ", ".join(str(u["version"]) for u in updates) or "none"
        raise RollbackError(f"version {version} is not in the stack's history (versions: {known})")
    if target.get("kind") != "update":
        raise RollbackError(f"version {version} was a {target.get('kind')}, not an update: pick an update to restore")
    if target.get("result") != "succeeded":
        raise RollbackError(
            f"version {version} {target.get('result') or 'did not finish'}: its configuration never deployed "
            "cleanly, so it is no state to return to; pick a version whose result is 'succeeded'"
        )
    return target


def restored_document(
    current: Mapping[str, Any], target_config: Mapping[str, Any], current_plain: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The stack file with the target's config, and the secrets that must be re-encrypted.

    `current_plain` is the current config with secrets shown; a secret whose value is unchanged
    keeps its ciphertext, so nothing is re-encrypted without need.
    """
    document = {k: v for k, v in current.items() if k != "config"}
    current_config = current.get("config") or {}
    config: dict[str, Any] = {}
    to_encrypt: dict[str, str] = {}
    for key, entry in sorted(target_config.items()):
        value = config_value(entry)
        if entry.get("secret"):
            if value is None:
                raise RollbackError(f"the history holds no value for secret {key}; is the passphrase right?")
            if "objectValue" in entry:
                # The settings keep secrets in plain top-level keys; a secret object is not ours to guess.
                raise RollbackError(f"{key} is a secret object; restore it by hand with `pulumi config set --path`")
            if key in current_config and str(current_plain.get(key)) == str(value):
                config[key] = current_config[key]
            else:
                to_encrypt[key] = str(value)
        else:
            config[key] = value
    document["config"] = config
    return document, to_encrypt


def built_services(app: Any) -> list[str]:
    """Services whose image the update built rather than named, from its app settings."""
    services = app.get("services") if isinstance(app, Mapping) else None
    if not isinstance(services, Mapping):
        return []
    return sorted(n for n, s in services.items() if isinstance(s, Mapping) and s.get("build") is not None)


def started(update: Mapping[str, Any]) -> dt.datetime | None:
    try:
        stamp = dt.datetime.fromisoformat(str(update.get("startTime", "")))
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)


def deployed_images(
    ledger: Any, services: Sequence[str], version: int, updates: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """service -> the digest update `version` deployed, from the program's `builtImages` record: the
    last one pushed before the next history entry started (the newest, for the latest entry)."""
    later = [u for u in updates if int(u["version"]) > version]
    boundary = started(min(later, key=lambda u: int(u["version"]))) if later else None
    found: dict[str, str] = {}
    for service in services:
        entries = ledger.get(service) if isinstance(ledger, Mapping) else None
        image, ambiguous = image_before(entries or [], boundary)
        if ambiguous:
            raise RollbackError(
                f"{service}'s recorded images cannot be told apart at the end of version {version} (one was pushed "
                f"within the second the next history entry began); pick the digest from `pulumi stack output "
                f"{LEDGER_OUTPUT}` and set it by hand: `pulumi config set --path app.services.{service}.image "
                "<repository>@sha256:<digest>`"
            )
        if image is not None:
            found[service] = image
    return found


BACKUP_LABEL_ANNOTATION = "support-platform.io/backup-label"
BACKUP_CLAIM_ANNOTATION = "support-platform.io/backup-claim"


def pre_migration_backups(resources: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(label, namespace/claim) of each backup Job that ran before a migration, from a snapshot."""
    found = []
    for resource in resources:
        annotations = ((resource.get("outputs") or {}).get("metadata") or {}).get("annotations") or {}
        if resource.get("type") == "kubernetes:batch/v1:Job" and BACKUP_LABEL_ANNOTATION in annotations:
            found.append((str(annotations[BACKUP_LABEL_ANNOTATION]), str(annotations.get(BACKUP_CLAIM_ANNOTATION, ""))))
    return sorted(found)


def schema_note(current: int, target: int, backups: Sequence[tuple[str, str]]) -> str:
    """What a rollback leaves alone: the schema the current release migrated to."""
    lines = [
        f"note: this restores version {target}'s configuration; it does not roll back the database schema "
        f"that version {current}'s migration left."
    ]
    if not backups:
        lines.append("  no pre-migration backup is recorded in the current state (backupFirst off, or no migration).")
    for label, claim in backups:
        lines.append(
            f"  backup taken before version {current}'s migration: label {label}, on claim {claim} "
            f"(files *-{label}.dump and .sha256; check one with `pg-backup.sh verify FILE`, restore with pg_restore)"
        )
    return "\n".join(lines)


def pinned_builds(config: dict[str, Any], images: Mapping[str, str]) -> list[str]:
    """Replace each built service's build block in a stack file's config by the digest it deployed."""
    app: Any = config.get(f"{PROJECT}:app")
    pinned = []
    for name in built_services(app):
        if name not in images:
            raise RollbackError(
                f"the restored config builds {name}'s image, but the stack's {LEDGER_OUTPUT} output records no "
                f"digest pushed by that version (the program keeps the last {KEEP} per service, since it began to); "
                f"restore it by hand: `pulumi config set --path app.services.{name}.image <repository>@sha256:<digest>`"
            )
        service = dict(app["services"][name])
        service.pop("build")
        service["image"] = images[name]
        app["services"][name] = service
        pinned.append(f"{name}={images[name]}")
    return pinned


def restore(stack: str, target: Mapping[str, Any], plain_target: Mapping[str, Any], images: Mapping[str, str]) -> Path:
    path = ROOT / f"Pulumi.{stack}.yaml"
    current = yaml.safe_load(path.read_text()) or {}
    current_plain = {
        k: v.get("objectValue", v.get("value")) if isinstance(v, Mapping) else v
        for k, v in json.loads(pulumi(stack, "config", "--json", "--show-secrets", "--stack", stack)).items()
    }
    document, to_encrypt = restored_document(current, plain_target.get("config") or {}, current_plain)
    for pin in pinned_builds(document["config"], images):
        print(f"built image restored by digest: {pin} (put the build block back to build again)")
    header = (
        f"# Restored by scripts/rollback.py from update {target['version']} ({target.get('startTime', '')}).\n"
        "# Review and commit it, or fix forward; the next `up` deploys what this file says.\n"
    )
    path.write_text(header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False))
    for key, value in to_encrypt.items():
        pulumi(stack, "config", "set", "--secret", key.split(":", 1)[1], "--stack", stack, stdin=value)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, choices=("dev", "staging", "production"))
    parser.add_argument("--to", type=int, metavar="VERSION", help="restore this update's configuration")
    parser.add_argument("--yes", action="store_true", help="do not ask before the update")
    args = parser.parse_args(argv)
    try:
        updates = history(args.stack)
        print(render_history(updates))
        if args.to is None:
            return 0
        target = choose(updates, args.to)
        state = current_state(args.stack)
        operations = state.get("pending_operations") or []
        if operations:
            raise RollbackError(pending_message(args.stack, operations))
        current_version = max((int(u["version"]) for u in updates), default=0)
        plain = next(u for u in history(args.stack, show_secrets=True) if int(u["version"]) == args.to)
        builds = built_services(config_value((target.get("config") or {}).get(f"{PROJECT}:app") or {}))
        images: dict[str, str] = {}
        if builds:
            outputs = json.loads(pulumi(args.stack, "stack", "output", "--json", "--stack", args.stack) or "{}")
            images = deployed_images(outputs.get(LEDGER_OUTPUT), builds, args.to, updates)
        # Read before the rollback changes the state: the backups the current release's migration took.
        backups = pre_migration_backups(state.get("resources") or []) if current_version else []
        path = restore(args.stack, target, plain, images)
        print(f"\nrestored the configuration of version {args.to} into {path.name}; previewing:\n", flush=True)
        subprocess.run([str(STACK_SH), "preview", args.stack], check=True)  # noqa: S603
        if not args.yes:
            answer = input(f"Roll '{args.stack}' back to version {args.to}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print(f"not deployed; {path.name} holds the restored configuration (git checkout to undo)")
                return 1
        message = f"rollback to version {args.to} (from version {current_version})"
        subprocess.run([str(STACK_SH), "up", args.stack, "--message", message], check=True)  # noqa: S603
        print(f"\n{message}: done")
        if current_version:
            print(schema_note(current_version, args.to, backups))
        return 0
    except RollbackError as error:
        print(f"rollback: {error}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as error:
        print(f"rollback: `{' '.join(map(str, error.cmd))}` failed (exit {error.returncode})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
