"""Heuristics for "this looks like a secret": by name, and by value.

Pure functions, so the tests can throw generated names and values at them. A name is secret-like
when it contains a secret word and does not end in a word that describes the secret instead of
holding it (`DB_PASSWORD` is a secret, `DB_PASSWORD_FILE` is a path). Values are secret-like when
they carry credentials in a URL, a PEM private key, a well-known token format, or an embedded
`password: ...` assignment. Reported values are redacted: a policy message must not leak them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "credential",
        "credentials",
        "apikey",
        "privatekey",
        "pwd",
    }
)
SECRET_PAIRS = frozenset(
    {
        ("api", "key"),
        ("private", "key"),
        ("access", "key"),
        ("secret", "key"),
        ("signing", "key"),
        ("encryption", "key"),
        ("master", "key"),
        ("client", "secret"),
    }
)
# A final word that names a property of the secret rather than the secret itself.
DESCRIPTOR_WORDS = frozenset(
    {
        "algorithm",
        "audience",
        "backend",
        "count",
        "dir",
        "directory",
        "disabled",
        "enable",
        "enabled",
        "endpoint",
        "expiration",
        "expiry",
        "file",
        "header",
        "host",
        "id",
        "issuer",
        "key_ref",
        "length",
        "lifetime",
        "limit",
        "location",
        "max",
        "min",
        "mode",
        "mount",
        "name",
        "names",
        "path",
        "policy",
        "provider",
        "ref",
        "required",
        "scope",
        "scopes",
        "seconds",
        "size",
        "store",
        "timeout",
        "ttl",
        "type",
        "uri",
        "url",
        "version",
    }
)

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


def name_words(name: str) -> list[str]:
    """`dbPassword` / `DB_PASSWORD` / `db.password` -> ["db", "password"]."""
    spaced = _CAMEL_BOUNDARY.sub(" ", name)
    return [w.lower() for w in _SEPARATORS.split(spaced) if w]


def is_secret_name(name: str) -> bool:
    words = name_words(name)
    if not words or words[-1] in DESCRIPTOR_WORDS:
        return False
    if words == ["pwd"]:
        return False  # the shell's working directory
    if any(w in SECRET_WORDS for w in words):
        return True
    return any(pair in SECRET_PAIRS for pair in itertools.pairwise(words))


_PLACEHOLDER = re.compile(r"^(\$|\{\{|<|%|\*{3,}|x{3,}$)", re.IGNORECASE)
_EMPTYISH = frozenset({"", "null", "none", "nil", "~"})


def is_placeholder(value: str) -> bool:
    """An unset value or a reference to be substituted later: `${DB_PASSWORD}`, `$(TOKEN)`."""
    stripped = value.strip().strip("'\"")
    return stripped.lower() in _EMPTYISH or bool(_PLACEHOLDER.match(stripped))


@dataclass(frozen=True)
class SecretHit:
    kind: str  # what was recognised, for the message
    redacted: str  # the value with the secret part masked


_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s:/@]*):(?P<password>[^\s@/]+)@")
_PEM_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_TOKEN_FORMATS = (
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("an API secret key (sk-...)", re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("a Stripe live key", re.compile(r"\b(?:sk|rk)_live_[0-9A-Za-z]{16,}")),
    ("a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
)
# `password: hunter2`, `DB_TOKEN=abc`, `"apiKey": "abc"` inside a config file held in a value.
_ASSIGNMENT = re.compile(
    r"""^\s*["']?(?P<key>[A-Za-z0-9_.-]+)["']?\s*[:=]\s*["']?(?P<value>[^"'\s,#}]+)""",
    re.MULTILINE,
)


def redact(value: str) -> str:
    return f"<redacted, {len(value)} characters>"


def find_secret_values(text: str) -> Iterator[SecretHit]:
    for match in _URL_CREDENTIALS.finditer(text):
        if not is_placeholder(match.group("password")):
            masked = f"{match.group('scheme')}{match.group('user')}:***@"
            yield SecretHit("a URL with an embedded password", masked)
    if _PEM_PRIVATE_KEY.search(text):
        yield SecretHit("a PEM private key", "<PEM private key>")
    for description, pattern in _TOKEN_FORMATS:
        for found in pattern.finditer(text):
            yield SecretHit(description, f"{found.group(0)[:4]}... ({len(found.group(0))} chars)")
    for match in _ASSIGNMENT.finditer(text):
        key, value = match.group("key"), match.group("value")
        if is_secret_name(key) and not is_placeholder(value) and "://" not in value:
            yield SecretHit(f"an embedded `{key}` assignment", f"{key}: {redact(value)}")
