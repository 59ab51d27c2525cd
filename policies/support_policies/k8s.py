"""Reading Kubernetes objects the way the policy engine hands them over.

Props arrive as read-only `Mapping`/`Sequence` proxies with every number as a float, and any field
may be missing or of an unexpected type. Every accessor here degrades to "absent" instead of
raising, except for values unknown during preview: those raise the SDK's `UnknownValueError`,
which the SDK turns into an advisory "can't run during preview" diagnostic.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

EMPTY: Mapping[str, Any] = MappingProxyType({})

K8S_PACKAGE = "kubernetes"
DEFAULT_NAMESPACE = "default"

# Resource types of the Kubernetes package that are not API objects (components and helpers).
_NON_OBJECT_MODULES = ("helm.sh", "yaml", "kustomize")

# Kinds that live outside any namespace. Unknown CRD kinds count as namespaced unless their kind
# starts with "Cluster", the convention every cluster-scoped CRD we know follows.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CSIDriver",
        "CSINode",
        "CertificateSigningRequest",
        "ClusterTrustBundle",
        "ComponentStatus",
        "CustomResourceDefinition",
        "DeviceClass",
        "FlowSchema",
        "GatewayClass",
        "IPAddress",
        "IngressClass",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "ResourceSlice",
        "RuntimeClass",
        "ServiceCIDR",
        "StorageClass",
        "StorageVersion",
        "StorageVersionMigration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
        "VolumeAttributesClass",
    }
)

WORKLOAD_KINDS = frozenset({"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"})
# Workloads whose replica count is a spec field (and that an HPA can own).
REPLICATED_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else EMPTY


def as_sequence(value: Any) -> Sequence[Any]:
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return value
    return ()


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_number(value: Any) -> float | None:
    """A JSON number as a float; bools are not numbers here even though Python says so."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def get_path(obj: Any, *keys: str) -> Any:
    """`obj[k1][k2]...`, or None as soon as a level is missing or not a mapping."""
    current = obj
    for key in keys:
        mapping = as_mapping(current)
        if key not in mapping:
            return None
        current = mapping[key]
    return current


def to_plain(value: Any) -> Any:
    """Proxies to plain dicts/lists, so values can be compared and printed."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(value[k]) for k in value}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [to_plain(v) for v in value]
    return value


def render(value: Any) -> str:
    """A found value for a message: JSON-ish, integral floats without '.0', None as <unset>."""
    if value is None:
        return "<unset>"
    plain = to_plain(value)
    if isinstance(plain, float) and math.isfinite(plain) and plain.is_integer():
        return str(int(plain))
    return json.dumps(plain, sort_keys=True, default=str)


@dataclass(frozen=True)
class TypeToken:
    """`kubernetes:apps/v1:Deployment` split into its parts."""

    package: str
    group: str  # "" for the core group
    version: str  # "" for unversioned helper modules such as `yaml`
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def parse_type(resource_type: str) -> TypeToken | None:
    parts = resource_type.split(":")
    if len(parts) != 3:
        return None
    package, module, kind = parts
    group, _, version = module.rpartition("/")
    if not version:
        return None
    if group == "core":
        group = ""
    return TypeToken(package, group, version if group or "/" in module else "", kind)


def k8s_kind(resource_type: str) -> str | None:
    """The Kubernetes kind of a resource type token, or None if it is not a Kubernetes API object.

    Patch and List resources are excluded: a patch carries a partial object by design, and a list
    wraps objects that are checked on their own.
    """
    token = parse_type(resource_type)
    if token is None or token.package != K8S_PACKAGE or not token.version:
        return None
    if token.group in _NON_OBJECT_MODULES:
        return None
    if token.kind.endswith(("Patch", "List")):
        return None
    return token.kind


def is_namespaced(kind: str) -> bool:
    return kind not in CLUSTER_SCOPED_KINDS and not kind.startswith("Cluster")


def metadata(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(props.get("metadata"))


def labels_of(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(meta.get("labels"))


def annotations_of(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(meta.get("annotations"))


def object_name(props: Mapping[str, Any]) -> str | None:
    return as_str(metadata(props).get("name"))


def effective_namespace(props: Mapping[str, Any]) -> str:
    """The namespace the API server would use: an omitted namespace means `default`."""
    return as_str(metadata(props).get("namespace")) or DEFAULT_NAMESPACE


def api_group(api_version: str) -> str:
    """`apps/v1` -> `apps`; `v1` -> `` (core)."""
    return api_version.rpartition("/")[0]


# --- label selectors -------------------------------------------------------------------------


def selector_is_empty(selector: Any) -> bool:
    """True for `{}` (select everything); a missing selector is not empty, it is absent."""
    sel = as_mapping(selector)
    return (
        isinstance(selector, Mapping)
        and not as_mapping(sel.get("matchLabels"))
        and not as_sequence(sel.get("matchExpressions"))
    )


def selector_matches(selector: Any, pod_labels: Mapping[str, Any]) -> bool:
    """metav1.LabelSelector semantics; a missing or malformed selector matches nothing."""
    if not isinstance(selector, Mapping):
        return False
    labels_match = all(
        pod_labels.get(label) == value for label, value in as_mapping(selector.get("matchLabels")).items()
    )
    return labels_match and all(
        _expression_matches(as_mapping(expr), pod_labels) for expr in as_sequence(selector.get("matchExpressions"))
    )


def _expression_matches(expr: Mapping[str, Any], pod_labels: Mapping[str, Any]) -> bool:
    key = as_str(expr.get("key"))
    operator = as_str(expr.get("operator"))
    if key is None:
        return False  # invalid; the API server would reject it
    values = [v for v in as_sequence(expr.get("values")) if isinstance(v, str)]
    present = key in pod_labels
    if operator == "In":
        return present and pod_labels[key] in values
    if operator == "NotIn":
        return not (present and pod_labels[key] in values)
    if operator in ("Exists", "DoesNotExist"):
        return present == (operator == "Exists")
    return False  # an unknown operator selects nothing


# --- URNs ------------------------------------------------------------------------------------


def urn_type_and_name(urn: str) -> tuple[str, str]:
    """`urn:pulumi:stack::project::parent$type::name` -> (type, name)."""
    parts = urn.split("::", 3)
    if len(parts) != 4:
        return "", urn
    return parts[2].rsplit("$", 1)[-1], parts[3]


# --- quantities ------------------------------------------------------------------------------

_QUANTITY_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?$")
_SUFFIX = {
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def parse_quantity(value: Any) -> float | None:
    """A Kubernetes resource quantity ("250m", "1Gi", 2) in base units, or None if malformed."""
    number = as_number(value)
    if number is not None:
        return number
    text = as_str(value)
    if text is None:
        return None
    match = _QUANTITY_RE.match(text.strip())
    if match is None:
        return None
    base = float(match.group(1))
    if match.group(2):
        return base * 10.0 ** int(match.group(2)[1:])
    return base * _SUFFIX.get(match.group(3) or "", 1.0)


def int_or_percent(value: Any, total: float, *, round_up: bool) -> float | None:
    """An IntOrString such as PDB minAvailable ("50%" or 2) scaled against `total` pods."""
    number = as_number(value)
    if number is not None:
        return number
    text = as_str(value)
    if text is None:
        return None
    text = text.strip()
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            return None
        scaled = pct * total / 100.0
        return float(math.ceil(scaled) if round_up else math.floor(scaled))
    try:
        return float(int(text))
    except ValueError:
        return None


def join(items: Iterable[str]) -> str:
    return ", ".join(items)
