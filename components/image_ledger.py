"""The built-image ledger: which digest each built service ran, and since when.

A rollback restores an earlier update's configuration, which every backend keeps in its history; but a
service that the update built (`build` instead of `image`) is named there by its build settings, not by
the digest that was pushed, and two updates with the same settings can push different digests (the
context changed). The state snapshot of each update would say, but only Pulumi Cloud serves old
snapshots (`pulumi stack export --version`); the DIY backends (file, s3, azblob, gs, postgres) serve
the latest one only. So the program records it itself, in a stack output every backend serves:

    builtImages: {api: [{image: registry/support/api@sha256:…, since: 2026-12-06T10:29:35.123456+00:00}, …]}

An entry is added when a service's pushed digest differs from its last entry, stamped with the time
the update pushed it; entries of services no longer built are kept, so the record survives a rollback
to a pinned image. The digest update N deployed is then the last entry stamped before the next
update started (scripts/rollback.py, `image_before`). Both times come from the machine that ran the
update (history times are whole seconds, the stamps finer): an entry stamped within the very second
the next update started is ambiguous, and a rollback refuses it rather than guess.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pulumi

LEDGER_OUTPUT = "builtImages"
KEEP = 50  # entries per service; older ones fall off (a rollback that far back says so)

Ledger = dict[str, list[dict[str, str]]]


def recorded(previous: Any) -> Ledger:
    """The ledger a previous update exported, keeping only well-formed entries."""
    ledger: Ledger = {}
    if not isinstance(previous, Mapping):
        return ledger
    for service, entries in previous.items():
        if not isinstance(entries, Sequence) or isinstance(entries, str):
            continue
        kept = [
            {"image": str(e["image"]), "since": str(e["since"])}
            for e in entries
            if isinstance(e, Mapping) and "@sha256:" in str(e.get("image", "")) and _stamp(e.get("since"))
        ]
        if kept:
            ledger[str(service)] = kept
    return ledger


def with_images(ledger: Ledger, images: Mapping[str, str], now: dt.datetime) -> Ledger:
    """The ledger after an update that deployed `images` (service -> pushed digest) at `now`."""
    updated = {service: list(entries) for service, entries in ledger.items()}
    for service, image in sorted(images.items()):
        entries = updated.setdefault(service, [])
        if not entries or entries[-1]["image"] != image:
            entries.append({"image": image, "since": now.astimezone(dt.UTC).isoformat(timespec="microseconds")})
        updated[service] = entries[-KEEP:]
    return updated


def ledger_output(
    previous: Any,
    built: Mapping[str, pulumi.Output[str]],
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> pulumi.Output[Ledger] | Ledger | None:
    """What to export as `builtImages`: None for a stack that never built; the clock is read when the
    digests resolve, that is, when the update has pushed them."""
    base = recorded(previous)
    if not built:
        return base or None
    return pulumi.Output.all(**built).apply(lambda images: with_images(base, images, clock()))


def image_before(entries: Sequence[Mapping[str, str]], boundary: dt.datetime | None) -> tuple[str | None, bool]:
    """(the last image stamped before `boundary` (None: the newest), whether that is ambiguous).

    Ambiguous: an entry stamped within the boundary's second (history keeps whole seconds), so it
    cannot be told whether the update before or the one at the boundary pushed it.
    """
    if boundary is None:
        return (entries[-1]["image"] if entries else None), False
    found = None
    for entry in entries:
        since = _stamp(entry.get("since"))
        if since is None:
            continue
        if boundary <= since < boundary + dt.timedelta(seconds=1):
            return None, True
        if since < boundary:
            found = entry["image"]
    return found, False


def _stamp(value: Any) -> dt.datetime | None:
    try:
        stamp = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else None
