"""Credentials by name and by look: the usual cloud and platform credential names are refused in
ConfigMaps and as literal env whatever their value; private keys are found whatever their armour."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from support_policies import data_secrets as data
from support_policies.secret_detection import find_secret_values, is_reference, is_secret_name

from .fixtures import (
    POD_SPEC_PATHS,
    TYPES,
    assert_finding,
    check_resource,
    container,
    simple,
    with_container,
)

CONFIG_MAP = f'{TYPES["ConfigMap"]} "api"'
# Every name the issue lists, and the usual ones of each provider and platform.
CREDENTIAL_NAMES = [
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "ARM_ACCESS_KEY",
    "GOOGLE_CREDENTIALS",
    "GOOGLE_CLOUD_KEYFILE_JSON",
    "GCP_SA_KEY",
    "OCI_CLI_KEY_CONTENT",
    "OCI_CLI_PASSPHRASE",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GITHUB_PAT",
    "GITHUB_APP_PRIVATE_KEY",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_WEBHOOK_URL",
    "PGPASSWORD",
    "MYSQL_ROOT_PASSWORD",
    "REDISCLI_AUTH_TOKEN",
    "SSH_KEY",
    "id_rsa",
    "id_ed25519",
    "tls.key",
    ".dockerconfigjson",
    ".htpasswd",
    ".netrc",
    ".pgpass",
    "TS_AUTHKEY",
    "SMTP_PASS",
    "DB_CREDS",
]
# Values a name must be refused with: short, masked, empty-looking or templated.
ODD_VALUES = ["x", "ab12", "****", "xxxxxxxx", "<redacted>", "${AWS_SECRET_ACCESS_KEY}", "changeme"]
# Names that describe or point at a credential, or hold none.
NOT_CREDENTIALS = [
    "GOOGLE_APPLICATION_CREDENTIALS",  # a path to the key file, by convention
    "AWS_ACCESS_KEY_ID",  # an identifier; its AKIA... value is found by look
    "AWS_SHARED_CREDENTIALS_FILE",
    "OCI_CLI_KEY_FILE",
    "DB_PASSWORD_FILE",
    "GF_SECURITY_ADMIN_PASSWORD__FILE",
    "POSTGRES_PASSWORD_FILE",
    "DATABASE_URL",
    "TOKEN_TTL_SECONDS",
    "MAX_TOKENS",
    "SESSION_KEY_PREFIX",
    "SECRET_NAME",
    "PWD",
]


@pytest.mark.parametrize("name", CREDENTIAL_NAMES)
def test_credential_names_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", NOT_CREDENTIALS)
def test_names_that_describe_or_point_at_a_credential_are_not(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize("value", ODD_VALUES)
@pytest.mark.parametrize("name", ["AZURE_STORAGE_KEY", "AWS_SECRET_ACCESS_KEY", "OCI_CLI_KEY_CONTENT", "PASSWORD"])
def test_a_config_map_key_named_like_a_credential_is_refused_whatever_the_value(name: str, value: str) -> None:
    resource_type, props = simple("ConfigMap", data={name: value})
    messages = check_resource(data.no_secrets_in_config_maps, resource_type, props)
    message = assert_finding(
        messages, subject=CONFIG_MAP, path=f'data["{name}"]', found=f'"<redacted, {len(value)} characters>"'
    )
    assert value not in message.split(" is ", 1)[1].split(";")[0]


@pytest.mark.parametrize("value", ODD_VALUES)
@pytest.mark.parametrize("name", ["GITHUB_TOKEN", "SLACK_WEBHOOK_URL", "AZURE_CLIENT_SECRET"])
def test_a_literal_env_named_like_a_credential_is_refused_whatever_the_value(name: str, value: str) -> None:
    resource_type, props = with_container(
        "Deployment", "containers", container("extra", env=[{"name": name, "value": value}])
    )
    messages = check_resource(data.no_literal_secret_env, resource_type, props)
    path = f"{POD_SPEC_PATHS['Deployment']}.containers[extra].env[{name}].value"
    assert_finding(messages, subject=f'{TYPES["Deployment"]} "api"', path=path, fix="secretKeyRef")


def env_messages(*env: dict[str, Any]) -> list[str]:
    resource_type, props = with_container("Deployment", "containers", container("extra", env=list(env)))
    return check_resource(data.no_literal_secret_env, resource_type, props)


def test_a_dependent_variable_is_judged_by_what_it_expands_to() -> None:
    from_secret = {"name": "RAW", "valueFrom": {"secretKeyRef": {"name": "gh", "key": "token"}}}
    assert env_messages(from_secret, {"name": "GITHUB_TOKEN", "value": "$(RAW)"}) == []
    # Kubernetes leaves a reference to an undefined variable as the text itself: no secret there.
    assert env_messages({"name": "GITHUB_TOKEN", "value": "$(UNDEFINED)"}) == []
    literal = {"name": "RAW", "value": "ghs_0123456789abcdef"}
    messages = env_messages(literal, {"name": "GITHUB_TOKEN", "value": "$(RAW)"})
    assert any("env[GITHUB_TOKEN].value is" in m for m in messages), messages


def test_an_empty_credential_env_holds_nothing() -> None:
    assert env_messages({"name": "GITHUB_TOKEN", "value": ""}) == []


# --- by look ---------------------------------------------------------------------------------

PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"


@given(
    dashes=st.integers(0, 12),
    label=st.sampled_from(["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", "DSA "]),
    newline=st.sampled_from(["\n", "\\n", " "]),
)
def test_a_private_key_is_found_whatever_its_armour(dashes: int, label: str, newline: str) -> None:
    armour = "-" * dashes
    pem = f"{armour}BEGIN {label}PRIVATE KEY{armour}{newline}{PEM_BODY}{newline}{armour}END {label}PRIVATE KEY{armour}"
    assert [h.kind for h in find_secret_values(pem)] == ["a PEM private key"]


@pytest.mark.parametrize("dashes", [0, 3, 4, 6, 9])
def test_a_private_key_in_an_env_value_is_refused_with_any_armour(dashes: int) -> None:
    armour = "-" * dashes
    pem = f"{armour}BEGIN PRIVATE KEY{armour}\n{PEM_BODY}\n{armour}END PRIVATE KEY{armour}"
    messages = env_messages({"name": "TLS_MATERIAL", "value": pem})
    path = f"{POD_SPEC_PATHS['Deployment']}.containers[extra].env[TLS_MATERIAL].value"
    assert_finding(messages, subject=f'{TYPES["Deployment"]} "api"', path=path, found='"<PEM private key>"')


def test_public_material_is_not_a_private_key() -> None:
    for text in (
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB support@example.com",
    ):
        assert list(find_secret_values(text)) == [], text


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("postgresql://support:****@postgres.data:5432/support", "a URL with an embedded password"),
        ("redis://:xxxxxx@redis.data:6379/0", "a URL with an embedded password"),
        (
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=abc;EndpointSuffix=core.windows.net",
            "a connection string AccountKey",
        ),
        ("Server=db;Database=app;User Id=app;Password=p;", "a connection string Password"),
        ("https://hooks.slack.com/services/T0000AAAA/B0000BBBB/abcdefghijklmnopqrstuvwx", "a Slack webhook URL"),
        ("https://acme.blob.core.windows.net/c?sv=2022-11-02&sig=abcdefghijklmnopqrstuvwxyz012345", "an Azure SAS"),
        ('{"type": "service_account", "project_id": "acme"}', "a GCP service account key"),
        ("password: ****", "an embedded `password` assignment"),
        ('proxy_set_header Authorization "Basic c3VwcG9ydDpodW50ZXIyMDI0";', "an HTTP Authorization credential"),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345", "an HTTP Authorization credential"),
    ],
)
def test_credentials_are_found_by_look(value: str, kind: str) -> None:
    kinds = [h.kind for h in find_secret_values(value)]
    assert any(k.startswith(kind) for k in kinds), kinds
    resource_type, props = simple("ConfigMap", data={"settings": value})
    messages = check_resource(data.no_secrets_in_config_maps, resource_type, props)
    assert messages and all('data["settings"]' in m for m in messages), messages
    assert not any(part in "\n".join(messages) for part in ("AccountKey=abc", "abcdefghijklmnop", "Password=p;"))


@pytest.mark.parametrize(
    "value",
    [
        "postgresql://support:${DB_PASSWORD}@postgres.data:5432/support",
        "postgresql://support@postgres.data:5432/support",
        "DefaultEndpointsProtocol=https;AccountName=acme;EndpointSuffix=core.windows.net",
        "[security]\nadmin_password = $__file{/etc/secrets/admin}\n",
        "password_file: /run/secrets/db/password",
        "https://hooks.example.com/notify",
        "auth_basic_user_file /etc/nginx/htpasswd;",
    ],
)
def test_references_and_credential_free_values_pass(value: str) -> None:
    assert list(find_secret_values(value)) == []


@pytest.mark.parametrize("value", ["${X}", "$(X)", "{{ .Values.password }}", "", "null", "$__file{/a}"])
def test_references(value: str) -> None:
    assert is_reference(value)


@pytest.mark.parametrize("value", ["***", "xxx", "<redacted>", "hunter2"])
def test_masked_values_are_not_references(value: str) -> None:
    assert not is_reference(value)


def test_binary_data_keys_are_judged_by_name_too() -> None:
    encoded = base64.b64encode(b"short").decode()
    resource_type, props = simple("ConfigMap", binaryData={"id_rsa": encoded})
    messages = check_resource(data.no_secrets_in_config_maps, resource_type, props)
    assert_finding(messages, subject=CONFIG_MAP, path='binaryData["id_rsa"]')
