"""How every rule in the pack is built: findings, messages, settings, exemptions.

Rules are plain functions from a `Subject` (one resource as the engine sees it) and the policy's
`Settings` to `Finding`s. The constructors below wrap them into SDK policies so that every rule
gets the same message format, the same settings lookup and the same exemption handling.

Exemptions live only in the per-stack config files (`policies/config/<stack>.json`), as the
property `exemptions: [{"resource": "<logical name or type::name>", "reason": "..."}]` of the
policy they relax. Code never names an exempt resource.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyProviderResource,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from .k8s import as_mapping, as_sequence, as_str, effective_namespace, k8s_kind, metadata, render

ANNOTATION_PREFIX = "support-platform.io"
ALLOW_PUBLIC_SERVICE_ANNOTATION = f"{ANNOTATION_PREFIX}/allow-public-service"
NEEDS_KUBERNETES_API_ANNOTATION = f"{ANNOTATION_PREFIX}/needs-kubernetes-api"
DATA_NAMESPACE_LABEL = f"{ANNOTATION_PREFIX}/data"

EXEMPTIONS_KEY = "exemptions"
EXEMPTIONS_SCHEMA: Mapping[str, Any] = {
    "type": "array",
    "description": (
        "Resources this policy does not apply to. `resource` is the logical name or "
        "`<type>::<logical name>`; `reason` says why, for review."
    ),
    "default": [],
    "items": {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "minLength": 1},
            "reason": {"type": "string", "minLength": 1},
        },
        "required": ["resource", "reason"],
        "additionalProperties": False,
    },
}


@dataclass(frozen=True)
class Finding:
    """One violation: where (field path), what was found, why it is wrong, and how to fix it."""

    path: str
    found: Any
    problem: str
    fix: str

    def message(self, subject: Subject) -> str:
        return f"{subject.label}: {self.path} is {render(self.found)}; {self.problem}. Fix: {self.fix}"


@dataclass(frozen=True)
class Subject:
    """One resource under check, from either a resource or a stack validation."""

    resource_type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    protect: bool
    provider: PolicyProviderResource | None

    @classmethod
    def from_args(cls, args: ResourceValidationArgs) -> Subject:
        return cls(args.resource_type, args.name, args.urn, args.props, args.opts.protect, args.provider)

    @classmethod
    def from_resource(cls, resource: PolicyResource) -> Subject:
        return cls(
            resource.resource_type,
            resource.name,
            resource.urn,
            resource.props,
            resource.opts.protect,
            resource.provider,
        )

    @property
    def kind(self) -> str | None:
        return k8s_kind(self.resource_type)

    @property
    def metadata(self) -> Mapping[str, Any]:
        return metadata(self.props)

    @property
    def namespace(self) -> str:
        return effective_namespace(self.props)

    @property
    def object_name(self) -> str | None:
        return as_str(self.metadata.get("name"))

    @property
    def label(self) -> str:
        return f'{self.resource_type} "{self.name}"'


@dataclass(frozen=True)
class Setting:
    """A per-stack policy setting: its JSON schema, which must carry the default."""

    key: str
    schema: Mapping[str, Any]

    def __post_init__(self) -> None:
        if "default" not in self.schema:
            raise ValueError(f"setting {self.key} needs a default")


class Settings:
    """A policy's config as the engine passes it, falling back to the schema defaults.

    The CLI already fills in schema defaults before it configures the pack; the fallback makes
    the rule functions behave the same when called directly (unit tests, no config).
    """

    def __init__(self, config: Mapping[str, Any], schema: PolicyConfigSchema) -> None:
        self._config = config
        self._schema = schema

    def raw(self, key: str) -> Any:
        if key in self._config:
            return self._config[key]
        return self._schema.properties[key]["default"]

    def flag(self, key: str) -> bool:
        return self.raw(key) is True

    def number(self, key: str) -> float:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return float(self._schema.properties[key]["default"])
        return float(value)

    def mapping(self, key: str) -> Mapping[str, Any]:
        return as_mapping(self.raw(key))

    def is_exempt(self, resource_type: str, name: str) -> bool:
        targets = {name, f"{resource_type}::{name}"}
        for entry in as_sequence(self.raw(EXEMPTIONS_KEY)):
            if as_str(as_mapping(entry).get("resource")) in targets:
                return True
        return False


def config_schema(settings: Sequence[Setting]) -> PolicyConfigSchema:
    properties: dict[str, dict[str, Any]] = {EXEMPTIONS_KEY: dict(EXEMPTIONS_SCHEMA)}
    for setting in settings:
        properties[setting.key] = dict(setting.schema)
    return PolicyConfigSchema(properties=properties)


ResourceCheck = Callable[[Subject, Settings], Iterable[Finding]]
StackCheck = Callable[[Sequence[Subject], Settings], Iterable[tuple[Subject, Finding]]]


def resource_policy(
    *,
    name: str,
    description: str,
    check: ResourceCheck,
    severity: Severity,
    tags: Sequence[str],
    settings: Sequence[Setting] = (),
) -> ResourceValidationPolicy:
    schema = config_schema(settings)

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        config = Settings(args.get_config(), schema)
        if config.is_exempt(args.resource_type, args.name):
            return
        subject = Subject.from_args(args)
        for finding in check(subject, config):
            report(finding.message(subject), None)

    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=schema,
        severity=severity,
        tags=list(tags),
    )


@dataclass(frozen=True)
class Theme:
    """What the resource policies of one theme share: their tags and their usual severity."""

    tags: tuple[str, ...]
    severity: Severity

    def policy(
        self,
        name: str,
        description: str,
        check: ResourceCheck,
        severity: Severity | None = None,
        settings: tuple[Setting, ...] = (),
    ) -> ResourceValidationPolicy:
        return resource_policy(
            name=name,
            description=description,
            check=check,
            severity=severity or self.severity,
            tags=self.tags,
            settings=settings,
        )


def stack_policy(
    *,
    name: str,
    description: str,
    check: StackCheck,
    severity: Severity,
    tags: Sequence[str],
    settings: Sequence[Setting] = (),
) -> StackValidationPolicy:
    schema = config_schema(settings)

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        config = Settings(args.get_config(), schema)
        subjects = [Subject.from_resource(r) for r in args.resources]
        for subject, finding in check(subjects, config):
            if not config.is_exempt(subject.resource_type, subject.name):
                report(finding.message(subject), subject.urn)

    return StackValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=schema,
        severity=severity,
        tags=list(tags),
    )


def known_or_skip(subjects: Iterable[Subject], extract: Callable[[Subject], Any]) -> Iterable[Any]:
    """Facts of the resources a stack rule judges, skipping those with values unknown in preview.

    Only for the resources being judged: skipping one means one check less. Resources that can
    satisfy a rule for others (NetworkPolicies, PDBs, Gateways) are read without this, so an
    unknown there makes the whole rule advisory for this preview instead of reporting a false
    violation.
    """
    for subject in subjects:
        try:
            facts = extract(subject)
        except UnknownValueError:
            continue
        if facts is not None:
            yield facts
