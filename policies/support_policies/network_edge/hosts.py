"""Host sanity at the edge: explicit, non-wildcard hostnames, and each host+path routed exactly once."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import Severity

from ..framework import Finding, Settings, Subject, known_or_skip, resource_policy, stack_policy
from ..k8s import as_mapping, as_sequence, as_str, to_plain
from .tls import is_gateway_api, is_redirect_only

_TAGS = ("network-edge",)


def _ingress_host_paths(spec: Mapping[str, Any]) -> Iterator[tuple[str, str | None, str]]:
    """(path of the rule, host, match key) for every Ingress path."""
    for i, rule in enumerate(as_sequence(spec.get("rules"))):
        rule_map = as_mapping(rule)
        host = as_str(rule_map.get("host"))
        paths = as_sequence(as_mapping(rule_map.get("http")).get("paths"))
        for j, entry in enumerate(paths):
            entry_map = as_mapping(entry)
            path_type = as_str(entry_map.get("pathType")) or "Prefix"
            kind = "Exact" if path_type == "Exact" else "Prefix"
            key = json.dumps([kind, as_str(entry_map.get("path")) or "/", None])
            yield f"spec.rules[{i}].http.paths[{j}]", host, key


def _route_matches(spec: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(path of the match, match key) for every HTTPRoute rule match; no match means `/`."""
    for i, rule in enumerate(as_sequence(spec.get("rules"))):
        matches = as_sequence(as_mapping(rule).get("matches")) or [{}]
        for j, match in enumerate(matches):
            match_map = to_plain(as_mapping(match))
            path = as_mapping(match_map.get("path"))
            path_type = as_str(path.get("type")) or "PathPrefix"
            kind = "Exact" if path_type == "Exact" else "Prefix" if path_type == "PathPrefix" else path_type
            extra = {k: v for k, v in match_map.items() if k != "path"} or None
            yield (
                f"spec.rules[{i}].matches[{j}]",
                json.dumps([kind, as_str(path.get("value")) or "/", extra], sort_keys=True),
            )


def _bad_host(path: str, host: str | None) -> Finding | None:
    if not host:
        return Finding(
            path,
            host,
            "a route without a hostname answers for every hostname",
            "set the explicit public hostname",
        )
    if "*" in host:
        return Finding(
            path,
            host,
            "a wildcard hostname routes names nobody reviewed to this backend",
            "list each public hostname explicitly",
        )
    return None


def check_host_sanity(subject: Subject, _: Settings) -> Iterator[Finding]:
    spec = as_mapping(subject.props.get("spec"))
    seen: dict[tuple[str | None, str], str] = {}
    duplicates: list[tuple[str, str | None, str, str]] = []
    if subject.kind == "Ingress":
        if spec.get("defaultBackend") is not None:
            yield Finding(
                "spec.defaultBackend",
                spec.get("defaultBackend"),
                "a default backend answers for every hostname",
                "route only through rules with explicit hosts",
            )
        for i, rule in enumerate(as_sequence(spec.get("rules"))):
            if (bad := _bad_host(f"spec.rules[{i}].host", as_str(as_mapping(rule).get("host")))) is not None:
                yield bad
        for path, host, key in _ingress_host_paths(spec):
            if (host, key) in seen:
                duplicates.append((path, host, key, seen[(host, key)]))
            seen.setdefault((host, key), path)
    elif is_gateway_api(subject, "HTTPRoute"):
        hostnames = [h for h in as_sequence(spec.get("hostnames"))]
        if not hostnames:
            yield Finding(
                "spec.hostnames",
                None,
                "a route without hostnames answers for every hostname of its listeners",
                "list the route's public hostnames explicitly",
            )
        for index, host in enumerate(hostnames):
            if (bad := _bad_host(f"spec.hostnames[{index}]", as_str(host))) is not None:
                yield bad
        for path, key in _route_matches(spec):
            for host in hostnames or [None]:
                host_str = as_str(host)
                if (host_str, key) in seen:
                    duplicates.append((path, host_str, key, seen[(host_str, key)]))
                seen.setdefault((host_str, key), path)
    for path, host, key, first in duplicates:
        yield Finding(
            path,
            {"host": host, "match": json.loads(key)},
            f"the same host and path are already routed by {first}",
            "remove or merge the duplicate so each host+path has one backend",
        )


@dataclass(frozen=True)
class _Claims:
    subject: Subject
    keys: tuple[tuple[str, str, str], ...]  # (host, match key, field path)


def _claims(subject: Subject) -> _Claims | None:
    spec = as_mapping(subject.props.get("spec"))
    if subject.kind == "Ingress":
        keys = tuple((host, key, path) for path, host, key in _ingress_host_paths(spec) if host)
        return _Claims(subject, keys)
    if is_gateway_api(subject, "HTTPRoute"):
        if is_redirect_only(to_plain(as_sequence(spec.get("rules")))):
            return None  # the HTTP->HTTPS redirect legitimately repeats the hosts
        hosts = [h for h in as_sequence(spec.get("hostnames")) if isinstance(h, str)]
        keys = tuple((h, key, path) for path, key in _route_matches(spec) for h in hosts)
        return _Claims(subject, keys)
    return None


def check_unique_host_paths(subjects: Sequence[Subject], _: Settings) -> Iterator[tuple[Subject, Finding]]:
    owners: dict[tuple[str, str], Subject] = {}
    for claims in known_or_skip(subjects, _claims):
        for host, key, path in claims.keys:
            first = owners.setdefault((host, key), claims.subject)
            if first is not claims.subject:
                yield (
                    claims.subject,
                    Finding(
                        path,
                        {"host": host, "match": json.loads(key)},
                        f"the same host and path are already routed by {first.label}",
                        "route each host+path from exactly one Ingress or HTTPRoute",
                    ),
                )


edge_host_sanity = resource_policy(
    name="edge-host-sanity",
    description="Ingress and HTTPRoute hosts are non-empty, without wildcards, and each host+path appears once.",
    check=check_host_sanity,
    severity=Severity.MEDIUM,
    tags=_TAGS,
)
edge_unique_host_paths = stack_policy(
    name="edge-unique-host-paths",
    description="No host+path is routed by more than one Ingress or HTTPRoute in the stack.",
    check=check_unique_host_paths,
    severity=Severity.MEDIUM,
    tags=_TAGS,
)

POLICIES = (
    edge_host_sanity,
    edge_unique_host_paths,
)
