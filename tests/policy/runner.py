"""Run the whole pack over recorded resources, the way the engine would.

    from tests.policy.runner import Record, run_pack   # or `from .runner import ...`
    violations = run_pack(records, "production")

`records` is any sequence of objects with the attributes of `Record` (a mock's resource
registrations, say): `type`, `name`, `urn`, `inputs` (camelCase, as the engine sees them),
`protect`, `provider` (the explicit provider's URN or provider reference `URN::ID`, or None) and
`parent` (a URN or None).

The runner drives the SDK's own analyzer servicer with the same protobuf requests the engine sends
(`Configure`, then `Analyze` per resource, then `AnalyzeStack`), so the rules see exactly what they
would see under `pulumi preview --policy-pack policies --policy-pack-config
policies/config/<stack>.json`: numbers as floats, read-only proxies, secrets unwrapped, unknown
values downgraded to advisory, enforcement levels and settings from the stack's config file
(loaded with the CLI's merge rules by `pack_config`), exemptions applied by the rules themselves.

A Kubernetes custom resource recorded without a provider gets the default provider the engine
would have assigned (`...::pulumi:providers:kubernetes::default_<version>`), so "forgot the
provider" shows up exactly as it would in a real preview.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import pickle
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel, Policy
from pulumi_policy.policy import _PolicyAnalyzerServicer

from support_policies import PACK_NAME, all_policies, shared_decoding
from support_policies.data_secrets import COMPONENT_TYPES

from .pack_config import PolicyConfig, load_stack_config, reconcile

PACK_VERSION = "0.1.0"
KUBERNETES_PROVIDER_VERSION = "4.25.0"
PROVIDER_TYPE_PREFIX = "pulumi:providers:"

_LEVELS = {
    proto.MANDATORY: "mandatory",
    proto.ADVISORY: "advisory",
    proto.REMEDIATE: "mandatory",  # the SDK reports these as mandatory
}
_PROTO_LEVEL = {
    EnforcementLevel.ADVISORY: proto.ADVISORY,
    EnforcementLevel.MANDATORY: proto.MANDATORY,
    EnforcementLevel.REMEDIATE: proto.REMEDIATE,
    EnforcementLevel.DISABLED: proto.DISABLED,
}


@dataclass
class Record:
    """One registered resource, as a mock or a state file records it."""

    type: str
    name: str
    urn: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    protect: bool = False
    provider: str | None = None
    parent: str | None = None


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str  # "mandatory" or "advisory"
    resource: str  # logical name; "" for a stack-wide violation
    message: str  # as the engine prints it: the policy description, a newline, the finding
    urn: str = ""


def run_pack(
    records: Sequence[Any],
    stack: str,
    *,
    raw_config: Mapping[str, Any] | None = None,
    only: Collection[str] = (),
) -> list[Violation]:
    """Every violation the pack reports for `records` under `policies/config/<stack>.json`.

    `raw_config` replaces the file's content (same format), for what-if tests of a config change.
    `only` runs just the named policies (with their own config), for a test about one rule.
    The same records under the same config are judged once per session (many tests ask about a stack).
    """
    key = _judgement_key(records, stack, raw_config, only)
    if key not in _JUDGED:
        _JUDGED[key] = _judge(records, stack, raw_config, only)
    return list(_JUDGED[key])


_JUDGED: dict[str, tuple[Violation, ...]] = {}


def _judgement_key(
    records: Sequence[Any], stack: str, raw_config: Mapping[str, Any] | None, only: Collection[str]
) -> str:
    seen = [
        (
            r.type,
            r.name,
            r.urn,
            r.inputs,
            getattr(r, "protect", False),
            getattr(r, "provider", None),
            getattr(r, "parent", None),
        )
        for r in records
    ]
    settings = json.dumps([stack, raw_config, sorted(only)], sort_keys=True, default=repr).encode()
    return hashlib.sha256(pickle.dumps(seen) + settings).hexdigest()


def _judge(
    records: Sequence[Any], stack: str, raw_config: Mapping[str, Any] | None, only: Collection[str]
) -> tuple[Violation, ...]:
    if raw_config is None:
        servicer = _configured_servicer(stack, tuple(sorted(only)))
    else:
        servicer = _servicer(_selected(only), reconcile(all_policies(), raw_config))
    names = {str(r.urn): str(r.name) for r in records}
    violations: list[Violation] = []
    for record in records:
        response = servicer.Analyze(_analyze_request(record, stack), None)
        violations += _violations(response.diagnostics, names, default_urn=str(record.urn))
    stack_request = proto.AnalyzeStackRequest(resources=[_stack_resource(record, stack) for record in records])
    response = servicer.AnalyzeStack(stack_request, None)
    violations += _violations(response.diagnostics, names, default_urn="")
    return tuple(violations)


def _selected(only: Collection[str]) -> list[Policy]:
    pack = all_policies()
    if not only:
        return pack
    unknown = set(only) - {p.name for p in pack}
    if unknown:
        raise ValueError(f"no such policies: {sorted(unknown)}")
    return [p for p in pack if p.name in only]


@functools.cache
def _configured_servicer(stack: str, only: tuple[str, ...]) -> Any:
    # The servicer holds nothing between calls but its configuration: one per (stack, selection).
    return _servicer(_selected(only), load_stack_config(stack, all_policies()))


def mandatory(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if v.level == "mandatory"]


def format_violations(violations: Iterable[Violation]) -> str:
    return "\n".join(f"[{v.level}] {v.policy} {v.resource}: {v.message}" for v in violations)


# --- the engine side ------------------------------------------------------------------------


def _servicer(policies: list[Policy], config: Mapping[str, PolicyConfig]) -> Any:
    shared_decoding.install()  # as policies/__main__.py does: the engine runs the pack that way
    selected = {p.name for p in policies}
    config = {name: entry for name, entry in config.items() if name in selected}
    servicer: Any = _PolicyAnalyzerServicer(
        PACK_NAME, PACK_VERSION, policies, EnforcementLevel.MANDATORY, None, None, None, None,
        None, None, None,
    )  # fmt: skip
    request = proto.ConfigureAnalyzerRequest(
        policyConfig={
            name: proto.PolicyConfig(
                enforcementLevel=_PROTO_LEVEL[entry.level],
                properties=_struct(entry.properties),
            )
            for name, entry in config.items()
        }
    )
    servicer.Configure(request, None)
    return servicer


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update({str(k): _wire(v, str(k)) for k, v in values.items()})
    return struct


def _wire(value: Any, where: str) -> Any:
    """A value as protobuf carries it: mappings and lists recursively; ints become floats there."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise TypeError(f"{where}: {value} cannot cross the engine boundary")
        return value
    if isinstance(value, Mapping):
        return {str(k): _wire(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wire(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where}: {type(value).__name__} is not a value the engine passes to policies")


def _urn_parts(urn: str) -> list[str]:
    return urn.split("::", 3)


def _provider(record: Any, stack: str) -> Any:
    reference = getattr(record, "provider", None)
    if reference:
        urn = str(reference)
        if urn.count("::") > 3:  # a provider reference "URN::ID"
            urn = urn.rsplit("::", 1)[0]
        provider_type, name = _urn_parts(urn)[2], _urn_parts(urn)[3]
    elif _needs_provider(str(record.type)):
        parts = _urn_parts(str(record.urn))
        project = parts[1] if len(parts) == 4 else "project"
        name = f"default_{KUBERNETES_PROVIDER_VERSION.replace('.', '_')}"
        provider_type = "pulumi:providers:kubernetes"
        urn = f"urn:pulumi:{stack}::{project}::{provider_type}::{name}"
    else:
        return None
    return proto.AnalyzerProviderResource(
        type=provider_type.rsplit("$", 1)[-1], properties=_struct({}), urn=urn, name=name
    )


def _needs_provider(resource_type: str) -> bool:
    """A custom resource of the Kubernetes package (components and providers have none)."""
    return resource_type.startswith("kubernetes:") and resource_type not in COMPONENT_TYPES


def _options(record: Any) -> Any:
    return proto.AnalyzerResourceOptions(
        protect=bool(getattr(record, "protect", False)),
        parent=str(getattr(record, "parent", None) or ""),
    )


def _analyze_request(record: Any, stack: str) -> Any:
    request = proto.AnalyzeRequest(
        type=str(record.type),
        properties=_struct(record.inputs or {}),
        urn=str(record.urn),
        name=str(record.name),
        options=_options(record),
    )
    provider = _provider(record, stack)
    if provider is not None:
        request.provider.CopyFrom(provider)
    return request


def _stack_resource(record: Any, stack: str) -> Any:
    resource = proto.AnalyzerResource(
        type=str(record.type),
        properties=_struct(record.inputs or {}),
        urn=str(record.urn),
        name=str(record.name),
        options=_options(record),
        parent=str(getattr(record, "parent", None) or ""),
    )
    provider = _provider(record, stack)
    if provider is not None:
        resource.provider.CopyFrom(provider)
    return resource


def _violations(diagnostics: Iterable[Any], names: Mapping[str, str], default_urn: str) -> list[Violation]:
    result = []
    for diagnostic in diagnostics:
        urn = diagnostic.urn or default_urn
        result.append(
            Violation(
                policy=diagnostic.policyName,
                level=_LEVELS.get(diagnostic.enforcementLevel, "advisory"),
                resource=names.get(urn, ""),
                message=diagnostic.message,
                urn=urn,
            )
        )
    return result
