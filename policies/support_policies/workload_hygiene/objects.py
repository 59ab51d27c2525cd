"""Workload hygiene of every object: identity (service accounts), placement (namespace), recommended
labels, controllers instead of bare pods, and GA API versions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from ..framework import NEEDS_KUBERNETES_API_ANNOTATION, Finding, Setting, Settings, Subject, Theme
from ..k8s import (
    DEFAULT_NAMESPACE,
    K8S_PACKAGE,
    annotations_of,
    as_str,
    is_namespaced,
    labels_of,
    parse_type,
)
from ..pod_specs import PodTemplate, pod_template

_THEME = Theme(("workload-hygiene",), Severity.MEDIUM)


def _pod(subject: Subject) -> PodTemplate | None:
    return pod_template(subject.resource_type, subject.props)


# --- service accounts -----------------------------------------------------------------------


def check_dedicated_service_account(subject: Subject, _: Settings) -> Iterator[Finding]:
    if (pod := _pod(subject)) is None:
        return
    name = pod.spec.get("serviceAccountName")
    legacy = pod.spec.get("serviceAccount")
    effective = name if name is not None else legacy
    field = "serviceAccountName" if name is not None or legacy is None else "serviceAccount"
    if effective in (None, "", "default"):
        yield Finding(
            f"{pod.path}.{field}",
            effective,
            "the namespace's default ServiceAccount is shared by every workload in it",
            "create a ServiceAccount for this workload and set serviceAccountName to it",
        )


def _declares_api_need(*metas: Mapping[str, Any]) -> bool:
    return any(as_str(annotations_of(meta).get(NEEDS_KUBERNETES_API_ANNOTATION)) for meta in metas)


def check_token_automount(subject: Subject, _: Settings) -> Iterator[Finding]:
    fix = (
        f"set automountServiceAccountToken: false, or annotate the workload with "
        f'"{NEEDS_KUBERNETES_API_ANNOTATION}: <why it calls the API>"'
    )
    problem = "a mounted API token is a credential an intruder can use against the cluster"
    if subject.kind == "ServiceAccount":
        value = subject.props.get("automountServiceAccountToken")
        if value is not False and not _declares_api_need(subject.metadata):
            yield Finding("automountServiceAccountToken", value, problem, fix)
        return
    if (pod := _pod(subject)) is None:
        return
    value = pod.spec.get("automountServiceAccountToken")
    if value is not False and not _declares_api_need(subject.metadata, pod.metadata):
        yield Finding(f"{pod.path}.automountServiceAccountToken", value, problem, fix)


# --- namespace, labels, bare pods -----------------------------------------------------------


def check_namespace(subject: Subject, _: Settings) -> Iterator[Finding]:
    kind = subject.kind
    if kind is None:
        return
    if kind == "Namespace" and subject.object_name == DEFAULT_NAMESPACE:
        yield Finding(
            "metadata.name",
            DEFAULT_NAMESPACE,
            "the default namespace must not be managed as an application namespace",
            "create a dedicated Namespace",
        )
        return
    if not is_namespaced(kind):
        return
    namespace = subject.metadata.get("namespace")
    if namespace in (None, "", DEFAULT_NAMESPACE):
        yield Finding(
            "metadata.namespace",
            namespace,
            "an omitted namespace means `default`, where policies and quotas of the platform do not apply",
            "set metadata.namespace to the component's namespace",
        )


RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
)
EXPECTED_LABEL_VALUES = Setting(
    "expectedValues",
    {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "default": {
            "app.kubernetes.io/part-of": "support-platform",
            "app.kubernetes.io/managed-by": "pulumi",
        },
        "description": "Recommended labels whose value is fixed for the whole program.",
    },
)


def check_labels(subject: Subject, settings: Settings) -> Iterator[Finding]:
    if subject.kind is None:
        return
    expected = settings.mapping(EXPECTED_LABEL_VALUES.key)
    places: list[tuple[str, Mapping[str, Any]]] = [("metadata", subject.metadata)]
    pod = _pod(subject)
    if pod is not None and subject.kind != "Pod":
        places.append((pod.metadata_path, pod.metadata))
    for path, meta in places:
        present = labels_of(meta)
        for key in RECOMMENDED_LABELS:
            value = present.get(key)
            if not as_str(value):
                yield Finding(
                    f'{path}.labels["{key}"]',
                    value,
                    "the recommended labels identify the object to tools and dashboards",
                    f"set {key} (use the shared label helper)",
                )
            elif key in expected and value != expected[key]:
                yield Finding(
                    f'{path}.labels["{key}"]',
                    value,
                    f"every object of this program carries {key}={expected[key]}",
                    f"set {key} to {expected[key]}",
                )


def check_bare_pod(subject: Subject, _: Settings) -> Iterator[Finding]:
    if subject.kind == "Pod":
        yield Finding(
            "kind",
            "Pod",
            "a bare pod is not rescheduled when its node fails",
            "run it through a Deployment, StatefulSet, DaemonSet or Job",
        )


# --- API versions ---------------------------------------------------------------------------

_PRE_RELEASE_RE = re.compile(r"^v\d+(alpha|beta)\d*$")
# Where a removed or pre-release API went when it graduated.
_STABLE_SUCCESSOR = {
    ("extensions", "Ingress"): "networking.k8s.io/v1",
    ("extensions", "NetworkPolicy"): "networking.k8s.io/v1",
    ("extensions", "PodSecurityPolicy"): "pod-security admission (the API was removed)",
}
_STABLE_GROUP_VERSION = {
    "extensions": "apps/v1",
    "apps": "apps/v1",
    "batch": "batch/v1",
    "policy": "policy/v1",
    "autoscaling": "autoscaling/v2",
    "networking.k8s.io": "networking.k8s.io/v1",
    "rbac.authorization.k8s.io": "rbac.authorization.k8s.io/v1",
    "storage.k8s.io": "storage.k8s.io/v1",
    "scheduling.k8s.io": "scheduling.k8s.io/v1",
    "coordination.k8s.io": "coordination.k8s.io/v1",
    "discovery.k8s.io": "discovery.k8s.io/v1",
    "events.k8s.io": "events.k8s.io/v1",
    "node.k8s.io": "node.k8s.io/v1",
    "certificates.k8s.io": "certificates.k8s.io/v1",
    "admissionregistration.k8s.io": "admissionregistration.k8s.io/v1",
    "apiextensions.k8s.io": "apiextensions.k8s.io/v1",
    "apiregistration.k8s.io": "apiregistration.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io": "flowcontrol.apiserver.k8s.io/v1",
    "gateway.networking.k8s.io": "gateway.networking.k8s.io/v1",
    "cert-manager.io": "cert-manager.io/v1",
    "monitoring.coreos.com": "monitoring.coreos.com/v1",
}


def check_api_version(subject: Subject, _: Settings) -> Iterator[Finding]:
    token = parse_type(subject.resource_type)
    if token is None or token.package != K8S_PACKAGE or not _PRE_RELEASE_RE.match(token.version):
        return
    successor = _STABLE_SUCCESSOR.get((token.group, token.kind)) or _STABLE_GROUP_VERSION.get(
        token.group, "the GA (v1 or later) version of the API"
    )
    yield Finding(
        "apiVersion",
        token.api_version,
        "alpha and beta APIs change without notice and are removed in later Kubernetes releases",
        f"use {successor} for {token.kind}",
    )


dedicated_service_account = _THEME.policy(
    "dedicated-service-account",
    "Pods run under their own ServiceAccount, never the namespace's default.",
    check_dedicated_service_account,
)
no_service_account_token_automount = _THEME.policy(
    "no-service-account-token-automount",
    "Pods and ServiceAccounts do not automount an API token unless they declare they need it.",
    check_token_automount,
    Severity.HIGH,
)
no_default_namespace = _THEME.policy(
    "no-default-namespace",
    "Namespaced objects name an explicit namespace other than default.",
    check_namespace,
)
recommended_labels = _THEME.policy(
    "recommended-labels",
    "Objects and pod templates carry the app.kubernetes.io recommended labels.",
    check_labels,
    Severity.LOW,
    settings=(EXPECTED_LABEL_VALUES,),
)
no_bare_pods = _THEME.policy(
    "no-bare-pods",
    "Pods are created only through controllers.",
    check_bare_pod,
)
stable_api_versions = _THEME.policy(
    "stable-api-versions",
    "Resources use GA API versions: no alpha, beta or removed apiVersions.",
    check_api_version,
)

POLICIES = (
    dedicated_service_account,
    no_service_account_token_automount,
    no_default_namespace,
    recommended_labels,
    no_bare_pods,
    stable_api_versions,
)
