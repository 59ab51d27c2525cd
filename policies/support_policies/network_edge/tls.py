"""TLS at the edge: every Ingress rule and HTTPRoute hostname is served over HTTPS, plain HTTP only
redirects, and no Ingress injects raw controller configuration.

HTTPRoute TLS is checked structurally where the stack holds the facts: every hostname of a route
must be served by an HTTPS listener of a Gateway in the stack that the route attaches to, and a
route attached to a plain-HTTP listener must be redirect-only (every rule a RequestRedirect to
https with no backends). Certificates themselves (cert-manager) are outside what policies see.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import Severity

from ..framework import Finding, Settings, Subject, known_or_skip, resource_policy, stack_policy
from ..k8s import (
    annotations_of,
    as_mapping,
    as_number,
    as_sequence,
    as_str,
    labels_of,
    parse_type,
    selector_matches,
    to_plain,
)

_TAGS = ("network-edge",)
GATEWAY_GROUP = "gateway.networking.k8s.io"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def is_gateway_api(subject: Subject, kind: str) -> bool:
    token = parse_type(subject.resource_type)
    return subject.kind == kind and token is not None and token.group == GATEWAY_GROUP


def certificate_covers(pattern: str, host: str) -> bool:
    """X.509 semantics: a wildcard covers exactly one leftmost label."""
    if pattern == host:
        return True
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return False


def check_ingress_tls(subject: Subject, _: Settings) -> Iterator[Finding]:
    if subject.kind != "Ingress":
        return
    spec = as_mapping(subject.props.get("spec"))
    entries = [as_mapping(entry) for entry in as_sequence(spec.get("tls"))]
    tls_hosts = [host for entry in entries for host in as_sequence(entry.get("hosts")) if isinstance(host, str)]
    # An entry without hosts is the certificate for the controller's catch-all host (the API's
    # default): the only TLS a rule without a host, or the default backend, can be served with.
    catch_all_tls = any(not as_sequence(entry.get("hosts")) for entry in entries)
    for index, rule in enumerate(as_sequence(spec.get("rules"))):
        host = as_str(as_mapping(rule).get("host"))
        if host and not any(certificate_covers(pattern, host) for pattern in tls_hosts):
            yield Finding(
                f"spec.rules[{index}].host",
                host,
                "the host is served without TLS",
                "list the host under spec.tls[].hosts with a secretName (a cert-manager certificate)",
            )
        elif not host and not catch_all_tls:
            yield Finding(
                f"spec.rules[{index}].host",
                None,
                "a rule without a host answers every hostname, over plain HTTP: no TLS entry covers it",
                "set the rule's host and list it under spec.tls[].hosts with a secretName",
            )
    if spec.get("defaultBackend") is not None and not catch_all_tls:
        yield Finding(
            "spec.defaultBackend",
            spec.get("defaultBackend"),
            "the default backend answers every hostname, over plain HTTP: no TLS entry covers it",
            "route through rules with hosts listed under spec.tls[].hosts",
        )
    redirect = annotations_of(subject.metadata).get("nginx.ingress.kubernetes.io/ssl-redirect")
    if isinstance(redirect, str) and redirect.lower() == "false":
        yield Finding(
            'metadata.annotations["nginx.ingress.kubernetes.io/ssl-redirect"]',
            redirect,
            "plain HTTP must only redirect to HTTPS",
            "remove the annotation (ingress-nginx redirects TLS hosts by default)",
        )


def check_ingress_snippets(subject: Subject, _: Settings) -> Iterator[Finding]:
    if subject.kind != "Ingress":
        return
    annotations = annotations_of(subject.metadata)
    # Keys only: values are free text an operator wrote, possibly unknown during preview.
    for key in sorted(str(k) for k in annotations if str(k).endswith("-snippet")):
        yield Finding(
            f'metadata.annotations["{key}"]',
            "<nginx configuration>",
            "snippet annotations inject raw controller configuration: they can undo TLS redirects and "
            "headers, and have let Ingress authors read the controller's secrets (CVE-2021-25742, CVE-2025-1974)",
            "use the controller's dedicated annotations (ssl-redirect, proxy-*, limit-*) or its ConfigMap instead",
        )


def listener_matches(listener_host: str | None, route_host: str | None) -> bool:
    """Gateway API hostname intersection; a wildcard matches any number of leftmost labels."""
    if listener_host is None or route_host is None:
        return True
    if listener_host == route_host:
        return True
    if listener_host.startswith("*.") and route_host.startswith("*."):
        return listener_host[1:].endswith(route_host[1:]) or route_host[1:].endswith(listener_host[1:])
    if listener_host.startswith("*."):
        return route_host.endswith(listener_host[1:])
    if route_host.startswith("*."):
        return listener_host.endswith(route_host[1:])
    return False


@dataclass(frozen=True)
class _Listener:
    gateway: str  # namespace/name
    namespace: str
    name: str
    protocol: str
    hostname: str | None
    port: float | None
    allowed_from: str
    allowed_selector: Any
    allowed_kinds: tuple[str, ...]

    def accepts(self, ref: Mapping[str, Any], route_ns: str, ns_labels: Mapping[str, Any]) -> bool:
        """Whether an HTTPRoute in `route_ns` with this parentRef attaches to this listener."""
        section = as_str(ref.get("sectionName"))
        port = as_number(ref.get("port"))
        addressed = (section is None or section == self.name) and (port is None or port == self.port)
        return addressed and self._accepts_kind() and self._accepts_namespace(route_ns, ns_labels)

    def _accepts_kind(self) -> bool:
        if self.allowed_kinds:
            return "HTTPRoute" in self.allowed_kinds
        # Without allowedRoutes.kinds, HTTP and HTTPS listeners take HTTPRoutes; TLS/TCP/UDP do not.
        return self.protocol in ("HTTP", "HTTPS")

    def _accepts_namespace(self, route_ns: str, ns_labels: Mapping[str, Any]) -> bool:
        if self.allowed_from == "All":
            return True
        if self.allowed_from == "Selector":
            # A namespace this stack does not create cannot be judged; assume it matches.
            labels_of_ns = ns_labels.get(route_ns)
            return labels_of_ns is None or selector_matches(self.allowed_selector, labels_of_ns)
        return route_ns == self.namespace


def _listeners(gateway: Subject) -> list[_Listener]:
    name = gateway.object_name or gateway.name
    result = []
    for entry in as_sequence(as_mapping(gateway.props.get("spec")).get("listeners")):
        listener = as_mapping(entry)
        allowed = as_mapping(listener.get("allowedRoutes"))
        namespaces = as_mapping(allowed.get("namespaces"))
        kinds = tuple(
            k for k in (as_str(as_mapping(kind).get("kind")) for kind in as_sequence(allowed.get("kinds"))) if k
        )
        result.append(
            _Listener(
                gateway=f"{gateway.namespace}/{name}",
                namespace=gateway.namespace,
                name=as_str(listener.get("name")) or "",
                protocol=as_str(listener.get("protocol")) or "",
                hostname=as_str(listener.get("hostname")),
                port=as_number(listener.get("port")),
                allowed_from=as_str(namespaces.get("from")) or "Same",
                allowed_selector=to_plain(namespaces.get("selector")),
                allowed_kinds=kinds,
            )
        )
    return result


def is_redirect_only(rules: Sequence[Any]) -> bool:
    """Every rule only redirects to https: what a plain-HTTP listener may serve."""
    if not rules:
        return False
    for rule in rules:
        rule_map = as_mapping(rule)
        if as_sequence(rule_map.get("backendRefs")):
            return False
        redirects = [
            as_mapping(as_mapping(f).get("requestRedirect"))
            for f in as_sequence(rule_map.get("filters"))
            if as_mapping(f).get("type") == "RequestRedirect"
        ]
        if not any(r.get("scheme") == "https" for r in redirects):
            return False
    return True


@dataclass(frozen=True)
class _Route:
    subject: Subject
    namespace: str
    hostnames: tuple[str, ...]
    parent_refs: tuple[Mapping[str, Any], ...]
    redirect_only: bool


def _route(subject: Subject) -> _Route | None:
    if not is_gateway_api(subject, "HTTPRoute"):
        return None
    spec = as_mapping(subject.props.get("spec"))
    return _Route(
        subject,
        subject.namespace,
        tuple(h for h in as_sequence(spec.get("hostnames")) if isinstance(h, str)),
        tuple(to_plain(as_mapping(r)) for r in as_sequence(spec.get("parentRefs"))),
        is_redirect_only(to_plain(as_sequence(spec.get("rules")))),
    )


def check_httproute_tls(subjects: Sequence[Subject], _: Settings) -> Iterator[tuple[Subject, Finding]]:
    gateways: dict[tuple[str, str], list[_Listener]] = {}
    ns_labels: dict[str, Mapping[str, Any]] = {}
    for subject in subjects:
        if is_gateway_api(subject, "Gateway"):
            name = subject.object_name or subject.name
            gateways[(subject.namespace, name)] = _listeners(subject)
        elif subject.kind == "Namespace" and subject.object_name:
            # The API server adds the immutable name label to every namespace; selectors use it.
            ns_labels[subject.object_name] = {
                **to_plain(labels_of(subject.metadata)),
                NAMESPACE_NAME_LABEL: subject.object_name,
            }
    for route in known_or_skip(subjects, _route):
        if route.redirect_only:
            continue
        yield from _route_tls(route, gateways, ns_labels)


def _route_tls(
    route: _Route,
    gateways: Mapping[tuple[str, str], list[_Listener]],
    ns_labels: Mapping[str, Mapping[str, Any]],
) -> Iterator[tuple[Subject, Finding]]:
    if not route.parent_refs:
        yield (
            route.subject,
            Finding(
                "spec.parentRefs",
                None,
                "the route is attached to no Gateway, so nothing serves it over TLS",
                "attach it to the HTTPS listener of the platform Gateway",
            ),
        )
        return
    attached: list[_Listener] = []
    for index, ref in enumerate(route.parent_refs):
        if (ref.get("group") or GATEWAY_GROUP) != GATEWAY_GROUP or (ref.get("kind") or "Gateway") != "Gateway":
            continue
        key = (as_str(ref.get("namespace")) or route.namespace, as_str(ref.get("name")) or "")
        if key not in gateways:
            yield (
                route.subject,
                Finding(
                    f"spec.parentRefs[{index}]",
                    ref,
                    f'Gateway "{key[0]}/{key[1]}" is not in this stack, so TLS cannot be verified',
                    "attach the route to a Gateway this program manages",
                ),
            )
            continue
        attached += [li for li in gateways[key] if li.accepts(ref, route.namespace, ns_labels)]
    hosts: tuple[str | None, ...] = route.hostnames or (None,)
    for host in hosts:
        if not any(li.protocol == "HTTPS" and listener_matches(li.hostname, host) for li in attached):
            yield (
                route.subject,
                Finding(
                    f"spec.hostnames[{host}]" if host else "spec.hostnames",
                    host,
                    "no HTTPS listener of an attached Gateway serves this hostname",
                    "attach the route (parentRefs[].sectionName) to an HTTPS listener whose hostname covers it",
                ),
            )
    plain = sorted(
        {
            f"{li.gateway}/{li.name}"
            for li in attached
            if li.protocol == "HTTP" and any(listener_matches(li.hostname, h) for h in hosts)
        }
    )
    if plain:
        yield (
            route.subject,
            Finding(
                "spec.parentRefs",
                plain,
                "the route serves traffic on a plain-HTTP listener; HTTP may only redirect",
                "set parentRefs[].sectionName to the HTTPS listener and serve HTTP with a "
                "redirect-only route (RequestRedirect scheme https)",
            ),
        )


ingress_tls = resource_policy(
    name="ingress-tls",
    description="Every Ingress rule, with a host or without, is covered by spec.tls; plain HTTP is not served.",
    check=check_ingress_tls,
    severity=Severity.HIGH,
    tags=_TAGS,
)
ingress_no_snippets = resource_policy(
    name="ingress-no-snippets",
    description="Ingresses carry no *-snippet annotations (raw nginx configuration bypasses the TLS and edge rules).",
    check=check_ingress_snippets,
    severity=Severity.HIGH,
    tags=_TAGS,
)
httproute_tls = stack_policy(
    name="httproute-tls",
    description="Every HTTPRoute hostname is served by an HTTPS listener of a Gateway in the "
    "stack; routes on plain-HTTP listeners only redirect.",
    check=check_httproute_tls,
    severity=Severity.HIGH,
    tags=_TAGS,
)

POLICIES = (
    ingress_tls,
    ingress_no_snippets,
    httproute_tls,
)
