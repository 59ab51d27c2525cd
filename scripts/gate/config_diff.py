"""The stack file's configuration, base branch against the pull request, per setting path.

Plain values are shown before → after. A secret (`secure:` in the stack file) is only ever said to
be added, removed, changed or unchanged: its ciphertext changes whenever someone sets it again, so
when ciphertexts differ the two files are decrypted with the stack's own secrets provider (`pulumi
config --show-secrets --config-file`) and compared in memory; no plaintext is printed or kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

SECURE = "secure"
# Top-level keys of a stack file that are not settings but decide how secrets are kept.
KEYS_OF_THE_FILE = ("secretsprovider", "encryptedkey", "encryptionsalt", "environment")


class ConfigDiffError(ValueError):
    pass


@dataclass(frozen=True)
class Secret:
    ciphertext: str


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # added | removed | changed | unchanged (secrets only)
    before: str | None = None
    after: str | None = None
    secret: bool = False

    def render(self) -> str:
        if self.secret:
            return f"- `{self.path}`: secret {self.kind}"
        if self.kind == "added":
            return f"- `{self.path}`: added `{self.after}`"
        if self.kind == "removed":
            return f"- `{self.path}`: removed (was `{self.before}`)"
        return f"- `{self.path}`: `{self.before}` → `{self.after}`"


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."


def flatten(config: Mapping[str, Any] | None, project: str) -> dict[str, Any]:
    """`project:app` → {"services": {"api": {"image": x}}} becomes {"app.services.api.image": x};
    lists are one value (their order matters), secrets become Secret."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and set(value) == {SECURE}:
            flat[prefix] = Secret(str(value[SECURE]))
        elif isinstance(value, Mapping):  # an empty mapping sets nothing
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        else:
            flat[prefix] = value

    for key, value in (config or {}).items():
        walk(key.removeprefix(f"{project}:"), value)
    return flat


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


Decrypt = Callable[[str], Mapping[str, str] | None]  # which file ("base"|"head") -> path -> digest


def diff(
    base: Mapping[str, Any] | None, head: Mapping[str, Any], project: str, decrypt: Decrypt | None = None
) -> list[Change]:
    """The differences between two parsed stack files, secrets compared without showing them."""
    old, new = flatten((base or {}).get("config"), project), flatten(head.get("config"), project)
    changes: list[Change] = []
    digests: dict[str, Mapping[str, str] | None] = {}

    def plain_digests(which: str) -> Mapping[str, str] | None:
        if which not in digests:
            digests[which] = decrypt(which) if decrypt else None
        return digests[which]

    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        secret = isinstance(before, Secret) or isinstance(after, Secret)
        if path not in new:
            changes.append(Change(path, "removed", None if secret else _show(before), secret=secret))
        elif path not in old:
            changes.append(Change(path, "added", after=None if secret else _show(after), secret=secret))
        elif secret and isinstance(before, Secret) and isinstance(after, Secret):
            if before == after:
                continue
            base_plain, head_plain = plain_digests("base"), plain_digests("head")
            if base_plain is None or head_plain is None or path not in base_plain or path not in head_plain:
                changes.append(Change(path, "changed (set again; could not decrypt to compare)", secret=True))
            else:
                kind = "unchanged (set again, same value)" if base_plain[path] == head_plain[path] else "changed"
                changes.append(Change(path, kind, secret=True))
        elif secret:
            changes.append(
                Change(
                    path,
                    "changed (now secret)" if isinstance(after, Secret) else "changed (no longer secret)",
                    secret=True,
                )
            )
        elif before != after:
            changes.append(Change(path, "changed", _show(before), _show(after)))
    for key in KEYS_OF_THE_FILE:
        if (base or {}).get(key) != head.get(key):
            changes.append(Change(f"(stack file) {key}", "changed", secret=True))
    return changes


def plaintext_digests(config_json: Mapping[str, Any], project: str) -> dict[str, str]:
    """Digests of every value of `pulumi config --json --show-secrets`, by the same paths as
    flatten(); only digests leave this function."""
    plain: dict[str, Any] = {}
    for key, entry in config_json.items():
        value = entry.get("objectValue", entry.get("value"))
        plain[key] = value
    flat = flatten(plain, project)
    return {path: _digest(value) for path, value in flat.items()}


def render(changes: list[Change]) -> list[str]:
    return [change.render() for change in changes]
