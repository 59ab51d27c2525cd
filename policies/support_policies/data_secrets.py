"""Data and secrets (Pulumi-specific): protect stateful resources, keep secrets out of plain text,
deploy only through the explicit Kubernetes provider.

`retain_on_delete` and whether a value was a Pulumi secret are invisible to policies, so the
program's own tests assert those; these rules check what the engine does show.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from .framework import DATA_NAMESPACE_LABEL, Finding, Settings, Subject, resource_policy
from .k8s import K8S_PACKAGE, as_mapping, as_sequence, as_str, labels_of, urn_type_and_name
from .pod_specs import containers, pod_template
from .secret_detection import find_secret_values, is_secret_name, redact

_TAGS = ("data-secrets",)

# --- protect --------------------------------------------------------------------------------


def check_protect(subject: Subject, _: Settings) -> Iterator[Finding]:
    kind = subject.kind
    is_data_namespace = kind == "Namespace" and labels_of(subject.metadata).get(DATA_NAMESPACE_LABEL) == "true"
    if kind not in ("StatefulSet", "PersistentVolumeClaim") and not is_data_namespace:
        return
    if not subject.protect:
        yield Finding(
            "opts.protect",
            subject.protect,
            "a stateful resource without protect can be deleted by a rename or `pulumi destroy`",
            "register it with ResourceOptions(protect=True) (and retain_on_delete=True)",
        )
    if kind == "StatefulSet":
        policy = as_mapping(as_mapping(subject.props.get("spec")).get("persistentVolumeClaimRetentionPolicy"))
        when_deleted = policy.get("whenDeleted")
        if when_deleted == "Delete":
            yield Finding(
                "spec.persistentVolumeClaimRetentionPolicy.whenDeleted",
                when_deleted,
                "deleting the StatefulSet would delete its volumes",
                "set whenDeleted (and whenScaled) to Retain",
            )


# --- secrets in ConfigMaps ------------------------------------------------------------------


def _decoded(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def check_config_map(subject: Subject, _: Settings) -> Iterator[Finding]:
    if subject.kind != "ConfigMap":
        return
    fix = "move the value into a Kubernetes Secret (from a Pulumi secret) and reference it"
    for section, decode in (("data", False), ("binaryData", True)):
        for key, raw in as_mapping(subject.props.get(section)).items():
            path = f'{section}["{key}"]'
            value = as_str(raw)
            if value is None:
                continue
            text = _decoded(value) if decode else value
            # By name, whatever the value: short, masked or empty, the key says a credential lives here.
            if is_secret_name(key):
                yield Finding(
                    path,
                    redact(value),
                    f"the key {key!r} names a credential and ConfigMaps are stored and shown in plain text",
                    fix,
                )
                continue
            for hit in find_secret_values(text or ""):
                yield Finding(
                    path,
                    hit.redacted,
                    f"the value contains {hit.kind}, and ConfigMaps are stored and shown in plain text",
                    fix,
                )


# --- literal secret env ---------------------------------------------------------------------


# `$(NAME)`: Kubernetes substitutes another variable of the same container (or leaves it as is).
_DEPENDENT_VARIABLE = re.compile(r"^\$\((?P<name>[A-Za-z_][A-Za-z0-9_.-]*)\)$")


def check_secret_env(subject: Subject, _: Settings) -> Iterator[Finding]:
    pod = pod_template(subject.resource_type, subject.props)
    if pod is None:
        return
    for container in containers(pod):
        entries = [as_mapping(entry) for entry in as_sequence(container.spec.get("env"))]
        literals = {as_str(e.get("name")): as_str(e.get("value")) for e in entries if "valueFrom" not in e}
        for index, env in enumerate(entries):
            name = as_str(env.get("name")) or str(index)
            base = f"{container.path}.env[{name}]"
            value = _resolved(as_str(env.get("value")), literals)
            yield from _env_findings(base, name, value, as_mapping(env.get("valueFrom")))


def _resolved(value: str | None, literals: Mapping[str | None, str | None]) -> str | None:
    """A `$(NAME)` reference to a literal of the same container is that literal; to a variable from a
    Secret (or to nothing, which Kubernetes leaves as the text itself) it holds no secret."""
    match = _DEPENDENT_VARIABLE.match(value or "")
    if match is None:
        return value
    return literals.get(match.group("name")) or None


def _env_findings(base: str, name: str, literal: str | None, value_from: Any) -> Iterator[Finding]:
    fix = f"set env {name} from valueFrom.secretKeyRef (a Kubernetes Secret created from a Pulumi secret)"
    if is_secret_name(name):
        # Whatever the literal is (short, masked, a `${X}` nobody expands), the name says it is a credential.
        if literal is not None and literal.strip():
            yield Finding(
                f"{base}.value",
                redact(literal),
                "a secret-named variable holds a literal value, visible in the manifest and state",
                fix,
            )
            return
        source = next(iter(value_from), None) if value_from else None
        if source is not None and source != "secretKeyRef":
            yield Finding(
                f"{base}.valueFrom",
                source,
                "a secret-named variable must come from a Secret, not a ConfigMap or field",
                fix,
            )
            return
    if literal:
        for hit in find_secret_values(literal):
            yield Finding(
                f"{base}.value",
                hit.redacted,
                f"the literal value contains {hit.kind}",
                fix,
            )


# --- explicit provider ----------------------------------------------------------------------

# Components of the Kubernetes package: they have no provider of their own, their children do.
COMPONENT_TYPES = frozenset(
    {
        "kubernetes:helm.sh/v3:Chart",
        "kubernetes:helm.sh/v4:Chart",
        "kubernetes:kustomize:Directory",
        "kubernetes:kustomize/v2:Directory",
        "kubernetes:yaml:ConfigFile",
        "kubernetes:yaml:ConfigGroup",
        "kubernetes:yaml/v2:ConfigFile",
        "kubernetes:yaml/v2:ConfigGroup",
    }
)


def check_explicit_provider(subject: Subject, _: Settings) -> Iterator[Finding]:
    if not subject.resource_type.startswith(f"{K8S_PACKAGE}:"):
        return
    if subject.resource_type in COMPONENT_TYPES:
        return
    provider = subject.provider
    fix = "pass opts=ResourceOptions(provider=<the stack's k8s.Provider>) (or a parent that has it)"
    if provider is None:
        yield Finding(
            "opts.provider",
            None,
            "no provider is recorded, so the engine would use its default Kubernetes provider",
            fix,
        )
        return
    provider_name = urn_type_and_name(provider.urn)[1] if provider.urn else provider.name
    # The engine's own test for a default provider: its URN name starts with "default".
    if provider_name.startswith("default"):
        yield Finding(
            "opts.provider",
            provider.urn or provider.name,
            "the default provider deploys to whatever cluster the ambient kubeconfig points at",
            fix,
        )


protect_stateful_resources = resource_policy(
    name="protect-stateful-resources",
    description="StatefulSets, PersistentVolumeClaims and data namespaces are protected and keep "
    "their volumes (production).",
    check=check_protect,
    severity=Severity.CRITICAL,
    tags=_TAGS,
)
no_secrets_in_config_maps = resource_policy(
    name="no-secrets-in-config-maps",
    description="ConfigMaps hold no passwords, tokens, keys or connection strings with credentials.",
    check=check_config_map,
    severity=Severity.CRITICAL,
    tags=_TAGS,
)
no_literal_secret_env = resource_policy(
    name="no-literal-secret-env",
    description="Secret-like environment variables come from secretKeyRef, never a literal value.",
    check=check_secret_env,
    severity=Severity.CRITICAL,
    tags=_TAGS,
)
explicit_kubernetes_provider = resource_policy(
    name="explicit-kubernetes-provider",
    description="No Kubernetes resource uses a default provider (no deploy via an ambient kubeconfig).",
    check=check_explicit_provider,
    severity=Severity.CRITICAL,
    tags=_TAGS,
)

POLICIES = (
    protect_stateful_resources,
    no_secrets_in_config_maps,
    no_literal_secret_env,
    explicit_kubernetes_provider,
)
