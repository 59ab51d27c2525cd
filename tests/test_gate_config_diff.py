"""The stack file's changes, base branch → pull request, in the gate's comment: plain values shown,
secrets only ever changed/unchanged."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from scripts import pr_gate
from scripts.gate import config_diff
from scripts.gate.plan import SECRET

BASE = {
    "encryptionsalt": "v1:abc",
    "config": {
        "support-platform:environment": "production",
        "support-platform:llmApiKey": {"secure": "v1:AAAA"},
        "support-platform:alertWebhookUrl": {"secure": "v1:BBBB"},
        "support-platform:app": {
            "defaults": {"replicas": 3, "autoscaling": {"minReplicas": 3, "maxReplicas": 10}},
            "corsOrigins": ["https://support.example.com"],
            "services": {"api": {"image": "api@sha256:1111", "env": {"TOKEN": {"secure": "v1:CCCC"}}}},
        },
    },
}


def head(**changes: object) -> dict[str, object]:
    document = yaml.safe_load(yaml.safe_dump(BASE))
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = document["config"]
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return document


def test_plain_settings_show_before_and_after_by_path() -> None:
    new = head(**{
        "support-platform:app__defaults__autoscaling__maxReplicas": 12,
        "support-platform:app__corsOrigins": ["https://support.example.com", "https://help.example.com"],
        "support-platform:app__services__api__resources": {"requests": {"cpu": "750m"}},
        "support-platform:environment": None,
    })  # fmt: skip
    rendered = config_diff.render(config_diff.diff(BASE, new, "support-platform"))
    assert rendered == [
        '- `app.corsOrigins`: `["https://support.example.com"]` → '
        '`["https://support.example.com", "https://help.example.com"]`',
        "- `app.defaults.autoscaling.maxReplicas`: `10` → `12`",
        "- `app.services.api.resources.requests.cpu`: added `750m`",
        "- `environment`: removed (was `production`)",
    ]


def test_secrets_are_compared_without_ever_being_shown() -> None:
    new = head(**{
        "support-platform:llmApiKey": {"secure": "v1:ZZZZ"},  # set again
        "support-platform:alertWebhookUrl": {"secure": "v1:YYYY"},  # a new value
        "support-platform:app__services__api__env__TOKEN": None,
        "support-platform:registryPassword": {"secure": "v1:DDDD"},
    })  # fmt: skip
    plain = {
        "base": {"llmApiKey": "digest-1", "alertWebhookUrl": "digest-2"},
        "head": {"llmApiKey": "digest-1", "alertWebhookUrl": "digest-3"},
    }
    calls: list[str] = []

    def decrypt(which: str) -> dict[str, str]:
        calls.append(which)
        return plain[which]

    rendered = config_diff.render(config_diff.diff(BASE, new, "support-platform", decrypt))
    assert rendered == [
        "- `alertWebhookUrl`: secret changed",
        "- `app.services.api.env.TOKEN`: secret removed",
        "- `llmApiKey`: secret unchanged (set again, same value)",
        "- `registryPassword`: secret added",
    ]
    assert sorted(calls) == ["base", "head"], "each file is decrypted once"
    assert not any("v1:" in line for line in rendered), "no ciphertext either"


def test_a_secret_that_cannot_be_decrypted_is_changed_and_unchanged_ciphertext_is_nothing() -> None:
    new = head(**{"support-platform:llmApiKey": {"secure": "v1:ZZZZ"}})
    assert config_diff.render(config_diff.diff(BASE, new, "support-platform", lambda which: None)) == [
        "- `llmApiKey`: secret changed (set again; could not decrypt to compare)"
    ]
    assert config_diff.diff(BASE, head(), "support-platform", lambda which: None) == []


def test_a_value_made_secret_shows_neither_side() -> None:
    new = head(**{"support-platform:environment": {"secure": "v1:EEEE"}})
    new["encryptionsalt"] = "v1:new"
    assert config_diff.render(config_diff.diff(BASE, new, "support-platform")) == [
        "- `environment`: secret changed (now secret)",
        "- `(stack file) encryptionsalt`: secret changed",
    ]


def test_plaintext_digests_follow_the_flattened_paths_and_keep_no_plaintext() -> None:
    listing = {
        "support-platform:llmApiKey": {"value": "sk-plain", "secret": True},
        "support-platform:app": {"value": "{}", "objectValue": {"services": {"api": {"env": {"TOKEN": "t0k"}}}}},
    }
    digests = config_diff.plaintext_digests(listing, "support-platform")
    assert set(digests) == {"llmApiKey", "app.services.api.env.TOKEN"}
    assert "sk-plain" not in str(digests) and "t0k" not in str(digests)
    other = config_diff.plaintext_digests({**listing, "support-platform:llmApiKey": {"value": "x"}}, "support-platform")
    assert digests["llmApiKey"] != other["llmApiKey"]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)  # noqa: S607 - git from PATH


def test_the_gate_reads_the_base_branch_file_from_git(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: support-platform\nruntime: python\n")
    (tmp_path / "Pulumi.production.yaml").write_text(yaml.safe_dump(BASE))
    git(tmp_path, "init", "-q")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "base", "--allow-empty")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "stack")
    (tmp_path / "Pulumi.production.yaml").write_text(
        yaml.safe_dump(head(**{"support-platform:app__defaults__replicas": 4}))
    )
    # No scripts/stack.sh here: nothing to decrypt with, and no secret changed.
    changes = pr_gate.config_changes("production", "HEAD", root=tmp_path)
    assert config_diff.render(changes) == ["- `app.defaults.replicas`: `3` → `4`"]
    # A stack file the base branch does not have: everything is added, secrets without values.
    new = pr_gate.config_changes("production", "HEAD~1", root=tmp_path)
    assert "- `llmApiKey`: secret added" in config_diff.render(new)
    with pytest.raises(config_diff.ConfigDiffError, match="not a commit here: fetch the base branch first"):
        pr_gate.config_changes("production", "origin/missing", root=tmp_path)
    assert SECRET not in str(changes)
