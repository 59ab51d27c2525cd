"""Heuristics for "this looks like a secret": by name, and by value.

Pure functions, so the tests can throw generated names and values at them. A name is secret-like
when it contains a secret word (also inside a compound such as `PGPASSWORD`) or a credential pair
(`AZURE_STORAGE_KEY`, `OCI_CLI_KEY_CONTENT`, `SLACK_WEBHOOK_URL`), and does not end in a word that
describes the secret instead of holding it (`DB_PASSWORD` is a secret, `DB_PASSWORD_FILE` is a
path). A name says what a value is whatever the value looks like: short, masked or empty. Values are
secret-like when they carry credentials in a URL or a connection string, a PEM private key (however
many dashes its armour has), a well-known token format, or an embedded `password: ...` assignment;
only references resolved elsewhere (`${X}`, `$(X)`, `{{ x }}`) pass. Reported values are redacted: a
policy message must not leak them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

SECRET_WORDS = frozenset(
    {
        "password",
        "pass",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "credential",
        "credentials",
        "creds",
        "apikey",
        "privatekey",
        "authkey",
        "pwd",
        # Files that are credentials by definition, as ConfigMap keys (`.dockerconfigjson`, `.netrc`).
        "dockerconfigjson",
        "dockercfg",
        "htpasswd",
        "netrc",
        "pgpass",
    }
)
# A secret word ending a compound: PGPASSWORD, MYSQLROOTPASSWORD, CLIENTSECRET, AUTHTOKEN.
SECRET_SUFFIXES = ("password", "passwd", "passphrase", "secret", "token", "apikey", "privatekey", "accesskey")
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
        # The usual cloud and platform credentials: Azure storage and account keys, OCI's key
        # content, SSH/TLS/client keys, service-account key files, GitHub personal access tokens.
        ("storage", "key"),
        ("account", "key"),
        ("shared", "key"),
        ("auth", "key"),
        ("hmac", "key"),
        ("session", "key"),
        ("license", "key"),
        ("key", "content"),
        ("ssh", "key"),
        ("tls", "key"),
        ("client", "key"),
        ("sa", "key"),
        ("keyfile", "json"),
        ("id", "rsa"),
        ("id", "ecdsa"),
        ("id", "ed25519"),
        ("github", "pat"),
        ("gh", "pat"),
        ("connection", "string"),
        ("conn", "str"),
    }
)
# Credentials whose name ends in a descriptor word: a webhook URL is the credential itself.
CREDENTIAL_ENDINGS = frozenset({("webhook", "url"), ("webhook", "uri"), ("sas", "url")})
# Names that by convention hold a path to a credential, never the credential.
PATH_CONVENTIONS = frozenset({"google_application_credentials"})
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
        "field",
        "file",
        "format",
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
        "prefix",
        "provider",
        "ref",
        "required",
        "scope",
        "scopes",
        "seconds",
        "size",
        "store",
        "suffix",
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
    if not words or "_".join(words) in PATH_CONVENTIONS:
        return False
    if len(words) >= 2 and tuple(words[-2:]) in CREDENTIAL_ENDINGS:
        return True
    if words[-1] in DESCRIPTOR_WORDS:
        return False
    if words == ["pwd"]:
        return False  # the shell's working directory
    if any(w in SECRET_WORDS or w.endswith(SECRET_SUFFIXES) for w in words):
        return True
    return any(pair in SECRET_PAIRS for pair in itertools.pairwise(words))


_PLACEHOLDER = re.compile(r"^(\$|\{\{|<|%|\*{3,}|x{3,}$)", re.IGNORECASE)
# Resolved by something else before use: shell/envsubst/Grafana `$...`, Kubernetes `$(X)`, templates.
_REFERENCE = re.compile(r"^(\$|\{\{)")
_EMPTYISH = frozenset({"", "null", "none", "nil", "~"})


def _unquoted(value: str) -> str:
    return value.strip().strip("'\"")


def is_placeholder(value: str) -> bool:
    """An unset, masked or to-be-substituted value: `${DB_PASSWORD}`, `$(TOKEN)`, `***`, `<set me>`."""
    stripped = _unquoted(value)
    return stripped.lower() in _EMPTYISH or bool(_PLACEHOLDER.match(stripped))


def is_reference(value: str) -> bool:
    """A value something else resolves before use, so it holds no secret itself. Masked values
    (`***`, `xxx`, `<redacted>`) are not references: they stand for a secret that is somewhere."""
    stripped = _unquoted(value)
    return stripped.lower() in _EMPTYISH or bool(_REFERENCE.match(stripped))


@dataclass(frozen=True)
class SecretHit:
    kind: str  # what was recognised, for the message
    redacted: str  # the value with the secret part masked


_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s:/@]*):(?P<password>[^\s@/]+)@")
# The armour with any number of dashes (none, five, or a mangled copy), and PuTTY's key files.
_PEM_PRIVATE_KEY = re.compile(r"BEGIN[ \t]+(?:[A-Z0-9]+[ \t]+)*PRIVATE[ \t]+KEY|PuTTY-User-Key-File-\d+:")
# `AccountKey=...;` (Azure storage), `SharedAccessKey=` (Service Bus), `Password=`/`Pwd=` (ADO.NET, ODBC).
_CONNECTION_STRING_SECRET = re.compile(
    r"(?:^|;)\s*(?P<key>AccountKey|SharedAccessKey|Password|Pwd)\s*=\s*(?P<value>[^;\s]+)", re.IGNORECASE
)
_TOKEN_FORMATS = (
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("an API secret key (sk-...)", re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("a Stripe live key", re.compile(r"\b(?:sk|rk)_live_[0-9A-Za-z]{16,}")),
    ("a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("an HTTP Authorization credential", re.compile(r"\b(?:Basic|Bearer)\s+[A-Za-z0-9._~+/-]{16,}=*")),
    ("a Slack webhook URL", re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}")),
    ("a Slack app token", re.compile(r"\bxapp-\d-[A-Z0-9]+-\d+-[a-f0-9]{16,}")),
    ("an Azure SAS signature", re.compile(r"[?&]sig=[A-Za-z0-9%/+]{20,}")),
    ("a GCP service account key", re.compile(r"\"type\"\s*:\s*\"service_account\"")),
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
        if not is_reference(match.group("password")):
            masked = f"{match.group('scheme')}{match.group('user')}:***@"
            yield SecretHit("a URL with an embedded password", masked)
    if _PEM_PRIVATE_KEY.search(text):
        yield SecretHit("a PEM private key", "<PEM private key>")
    for match in _CONNECTION_STRING_SECRET.finditer(text):
        if not is_reference(match.group("value")):
            yield SecretHit(
                f"a connection string {match.group('key')}", f"{match.group('key')}={redact(match.group('value'))}"
            )
    for description, pattern in _TOKEN_FORMATS:
        for found in pattern.finditer(text):
            yield SecretHit(description, f"{found.group(0)[:4]}... ({len(found.group(0))} chars)")
    for match in _ASSIGNMENT.finditer(text):
        key, value = match.group("key"), match.group("value")
        if is_secret_name(key) and not is_reference(value) and "://" not in value:
            yield SecretHit(f"an embedded `{key}` assignment", f"{key}: {redact(value)}")
