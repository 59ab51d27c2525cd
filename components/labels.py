"""Recommended Kubernetes labels: one helper, so every object is labelled the same way.

Selectors use only the immutable subset (name, instance): a selector that contained `version`
would orphan the running pods on the next release.
"""

from __future__ import annotations

from typing import Final

PART_OF: Final = "support-platform"
MANAGED_BY: Final = "pulumi"
ANNOTATION_PREFIX: Final = "support-platform.io"
DATA_NAMESPACE_LABEL: Final = f"{ANNOTATION_PREFIX}/data"
CHECKSUM_ANNOTATION: Final = f"{ANNOTATION_PREFIX}/config-checksum"
# A workload that mounts an API token says why (the policy pack refuses a token without a reason).
NEEDS_KUBERNETES_API: Final = f"{ANNOTATION_PREFIX}/needs-kubernetes-api"
# A ClusterRole or ClusterRoleBinding names the setting that asked for it (the pack refuses one without).
CLUSTER_SCOPE: Final = f"{ANNOTATION_PREFIX}/cluster-scope"


def selector_labels(name: str, instance: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": instance}


def standard_labels(name: str, instance: str, component: str, version: str) -> dict[str, str]:
    return {
        **selector_labels(name, instance),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/version": label_value(version),
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def label_value(value: str) -> str:
    """A string made fit for a label value: at most 63 characters of [A-Za-z0-9._-], alnum at both ends."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in value)[:63]
    return cleaned.strip("._-") or "unknown"


def image_version(image: str) -> str:
    """The version label of an image reference: its tag, else the short digest."""
    if "@sha256:" in image:
        return "sha256-" + image.rsplit("@sha256:", 1)[1][:12]
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "unknown"
