"""The pack as a whole: name, catalogue coverage, `__main__.py`, config files, README."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

import support_policies
from support_policies import all_policies

from . import POLICIES_DIR
from .pack_config import STACKS, PackConfigError, read_config_file, reconcile

# The catalogue (shared/design/guardrails.md): every rule and the policies that implement it.
CATALOGUE: dict[str, tuple[str, ...]] = {
    # Pod security (PSS restricted, complete)
    "no privileged": ("pss-no-privileged-containers",),
    "no host namespaces": ("pss-no-host-namespaces",),
    "no hostPath, no hostPort": ("pss-no-host-path-volumes", "pss-no-host-ports"),
    "baseline misc": (
        "pss-default-proc-mount",
        "pss-safe-sysctls",
        "pss-apparmor-not-unconfined",
        "pss-restricted-selinux-options",
        "pss-no-windows-host-process",
        "pss-no-probe-or-lifecycle-host",
    ),
    "capabilities": ("pss-restricted-capabilities",),
    "no privilege escalation": ("pss-no-privilege-escalation",),
    "non-root": ("pss-run-as-non-root",),
    "seccomp": ("pss-seccomp-profile",),
    "volume types": ("pss-restricted-volume-types",),
    # Workload hygiene
    "resources": ("container-resources",),
    "probes": ("container-probes",),
    "image tag": ("image-tag-pinned",),
    "read-only root fs": ("read-only-root-filesystem",),
    "service account": ("dedicated-service-account", "no-service-account-token-automount"),
    "namespace": ("no-default-namespace",),
    "labels": ("recommended-labels",),
    "no bare pods": ("no-bare-pods",),
    "stable APIs": ("stable-api-versions",),
    # Network and edge
    "default deny": ("default-deny-network-policy", "network-policy-coverage"),
    "no public services": ("no-public-services",),
    # Snippets can rewrite what the TLS rule guarantees (redirects, headers), so they sit with it.
    "TLS": ("ingress-tls", "ingress-no-snippets", "httproute-tls"),
    "host sanity": ("edge-host-sanity", "edge-unique-host-paths"),
    # RBAC
    "no admin bindings": ("rbac-no-admin-bindings",),
    "no wildcards": ("rbac-no-wildcards",),
    "no escalation": ("rbac-no-escalation",),
    "secrets": ("rbac-secret-reads",),
    "cluster scope": ("rbac-cluster-scope",),
    # Availability
    "disruption budget": ("pdb-coverage", "pdb-allows-disruption"),
    "autoscaling": ("hpa-sanity",),
    "spreading": ("replica-spreading",),
    # Data and secrets
    "protect stateful": ("protect-stateful-resources",),
    "no secrets in config maps": ("no-secrets-in-config-maps",),
    "no literal secret env": ("no-literal-secret-env",),
    "explicit provider": ("explicit-kubernetes-provider",),
}
STACK_POLICIES = {
    "default-deny-network-policy",
    "network-policy-coverage",
    "httproute-tls",
    "edge-unique-host-paths",
    "pdb-coverage",
    "pdb-allows-disruption",
    "hpa-sanity",
    "replica-spreading",
}
# Settings where the anchors disagree: explicit in every stack's file, with these values.
STACK_SETTINGS: dict[tuple[str, str], dict[str, Any]] = {
    ("pss-run-as-non-root", "minimumUid"): {"dev": 0, "staging": 10000, "production": 10000},
    ("container-resources", "requireCpuLimit"): {"dev": False, "staging": True, "production": True},
    ("read-only-root-filesystem", "requireReadOnlyRootFilesystem"): {"dev": True, "staging": True, "production": True},
    ("image-tag-pinned", "requireDigest"): {"dev": False, "staging": False, "production": True},
    ("hpa-sanity", "minimumMinReplicas"): {"dev": 1, "staging": 2, "production": 2},
}
GUARDRAILS = Path(__file__).resolve().parents[3] / "shared" / "design" / "guardrails.md"
POLICIES = all_policies()
NAMES = [p.name for p in POLICIES]


def test_pack_name() -> None:
    assert support_policies.PACK_NAME == "support-platform-guardrails"
    assert re.fullmatch(r"[a-zA-Z0-9-_.]{1,100}", support_policies.PACK_NAME)


def test_policy_names_are_unique_and_kebab_case() -> None:
    assert len(NAMES) == len(set(NAMES))
    for name in NAMES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), name


@pytest.mark.parametrize("policy", POLICIES, ids=NAMES)
def test_policy_metadata(policy: Policy) -> None:
    assert isinstance(policy, StackValidationPolicy if policy.name in STACK_POLICIES else ResourceValidationPolicy)
    assert policy.description.endswith(".")
    assert policy.severity is not None and policy.tags
    assert policy.enforcement_level == EnforcementLevel.MANDATORY
    assert policy.config_schema is not None and "exemptions" in policy.config_schema.properties
    for key, schema in policy.config_schema.properties.items():
        assert "default" in schema, f"{policy.name}.{key} needs a default"


def test_every_catalogue_rule_maps_to_policies_and_every_policy_to_a_rule() -> None:
    mapped = [name for names in CATALOGUE.values() for name in names]
    assert sorted(mapped) == sorted(NAMES)


def test_catalogue_table_matches_the_design_document() -> None:
    if not GUARDRAILS.exists():
        pytest.skip(f"{GUARDRAILS} is not beside this checkout")
    rows = re.findall(r"^\| ([^|]+?) \| [^|]+ \|$", GUARDRAILS.read_text(encoding="utf-8"), re.MULTILINE)
    rules = [row for row in rows if row not in ("rule", "---")]
    assert sorted(rules) == sorted(CATALOGUE)


def _main_module() -> ast.Module:
    return ast.parse((POLICIES_DIR / "__main__.py").read_text(encoding="utf-8"))


def _policy_variables() -> dict[str, str]:
    """Module-level variable name -> policy name, over every theme module."""
    found = {}
    for theme in support_policies.THEMES:
        for variable, value in vars(theme).items():
            if isinstance(value, Policy):
                found[variable] = value.name
    return found


def test_main_only_builds_the_pack_from_every_policy() -> None:
    module = _main_module()
    statements = [s for s in module.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    imports = [s for s in statements if isinstance(s, (ast.Import, ast.ImportFrom))]
    calls = [s for s in statements if s not in imports]
    assert len(calls) == 1, "__main__.py must hold imports and the PolicyPack(...) call only"
    call = calls[0]
    assert isinstance(call, ast.Expr) and isinstance(call.value, ast.Call)
    assert isinstance(call.value.func, ast.Name) and call.value.func.id == "PolicyPack"
    keywords = {k.arg: k.value for k in call.value.keywords}
    assert isinstance(keywords["name"], ast.Name) and keywords["name"].id == "PACK_NAME"
    listed = keywords["policies"]
    # The pack gets all_policies(), so what it enforces is exactly what the tests below check.
    assert isinstance(listed, ast.Call) and isinstance(listed.func, ast.Name) and listed.func.id == "all_policies"
    imported = {alias.asname or alias.name for s in imports if isinstance(s, ast.ImportFrom) for alias in s.names}
    assert {"PACK_NAME", "all_policies"} <= imported


def test_the_pack_holds_every_policy_once_in_catalogue_order() -> None:
    pack = all_policies()
    names = [policy.name for policy in pack]
    assert len(names) == len(set(names))
    variables = _policy_variables()
    # Every module-level policy of every theme is in its module's POLICIES, none forgotten.
    assert sorted(names) == sorted(variables.values())
    assert names == NAMES, "keep each theme's POLICIES in catalogue order"


@pytest.mark.parametrize("stack", STACKS)
def test_stack_config_names_every_policy_with_an_explicit_level(stack: str) -> None:
    raw = read_config_file(stack)
    assert set(raw) == set(NAMES), "every policy, and nothing else, in each stack file"
    for name, entry in raw.items():
        assert isinstance(entry, dict) and "enforcementLevel" in entry, name


@pytest.mark.parametrize("stack", STACKS)
def test_every_config_schema_accepts_the_stack_config(stack: str) -> None:
    reconciled = reconcile(POLICIES, read_config_file(stack))
    assert set(reconciled) == set(NAMES)


@pytest.mark.parametrize(("policy", "setting"), list(STACK_SETTINGS))
def test_disputed_settings_are_explicit_per_stack(policy: str, setting: str) -> None:
    for stack, expected in STACK_SETTINGS[(policy, setting)].items():
        assert read_config_file(stack)[policy][setting] == expected, (stack, policy, setting)


def test_enforcement_levels_per_stack() -> None:
    levels = {stack: {n: e["enforcementLevel"] for n, e in read_config_file(stack).items()} for stack in STACKS}
    assert set(levels["production"].values()) == {"mandatory"}
    assert {n for n, lvl in levels["staging"].items() if lvl != "mandatory"} == {"protect-stateful-resources"}
    assert levels["staging"]["protect-stateful-resources"] == "disabled"
    relaxed_in_dev = {n for n, lvl in levels["dev"].items() if lvl != "mandatory"}
    security = {n for n in NAMES if n.startswith(("pss-", "rbac-"))} | {
        "no-secrets-in-config-maps",
        "no-literal-secret-env",
        "explicit-kubernetes-provider",
        "no-public-services",
        "default-deny-network-policy",
    }
    assert not relaxed_in_dev & security, "dev may relax noisy rules, never security ones"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"pss-seccomp-profil": "mandatory"}, "no such policy"),
        ({"pss-seccomp-profile": "blocking"}, "not an enforcement level"),
        ({"pss-run-as-non-root": {"minimumUid": "10000"}}, "expected integer"),
        ({"pss-run-as-non-root": {"minimumUID": 10000}}, "unknown property"),
        ({"image-tag-pinned": {"exemptions": [{"resource": "api"}]}}, "reason is required"),
        ({"image-tag-pinned": {"exemptions": [{"resource": "", "reason": "x"}]}}, "shorter than 1"),
    ],
)
def test_config_mistakes_are_rejected(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(PackConfigError, match=problem):
        reconcile(POLICIES, raw)


def test_all_sets_every_level_and_defaults_fill_settings() -> None:
    reconciled = reconcile(POLICIES, {"all": "advisory", "pss-seccomp-profile": {"enforcementLevel": "mandatory"}})
    assert reconciled["pss-seccomp-profile"].level == EnforcementLevel.MANDATORY
    assert reconciled["container-probes"].level == EnforcementLevel.ADVISORY
    assert reconciled["image-tag-pinned"].properties == {"exemptions": [], "requireDigest": False}


def test_policy_project_files() -> None:
    project = yaml.safe_load((POLICIES_DIR / "PulumiPolicy.yaml").read_text(encoding="utf-8"))
    assert project["runtime"] == {"name": "python", "options": {"virtualenv": "venv"}}
    assert project["version"] == "0.1.0" and project["description"]
    pins = (POLICIES_DIR / "requirements.txt").read_text(encoding="utf-8").split()
    assert {"pulumi==3.259.0", "pulumi-policy==1.21.0"} <= set(pins)


def test_readme_table_matches_the_config_files() -> None:
    readme = (POLICIES_DIR / "README.md").read_text(encoding="utf-8")
    configs = {stack: read_config_file(stack) for stack in STACKS}
    for name in NAMES:
        rows = re.findall(
            rf"^\|[^|\n]*\| `{re.escape(name)}` \|([^|\n]*)\|([^|\n]*)\|([^|\n]*)\|", readme, re.MULTILINE
        )
        assert len(rows) == 1, f"README needs one table row for {name}"
        assert [cell.strip() for cell in rows[0]] == [configs[s][name]["enforcementLevel"] for s in STACKS], name
