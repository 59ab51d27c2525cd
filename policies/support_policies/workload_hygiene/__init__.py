"""Workload hygiene: `containers.py` judges what every container declares (resources, probes, image,
root filesystem), `objects.py` what every object declares (identity, namespace, labels, controller,
API version).
"""

from __future__ import annotations

from . import containers, objects
from .containers import (
    REQUIRE_CPU_LIMIT,
    REQUIRE_DIGEST,
    REQUIRE_READ_ONLY_ROOT,
    container_probes,
    container_resources,
    image_tag_pinned,
    parse_image,
    read_only_root_filesystem,
)
from .objects import (
    EXPECTED_LABEL_VALUES,
    RECOMMENDED_LABELS,
    dedicated_service_account,
    no_bare_pods,
    no_default_namespace,
    no_service_account_token_automount,
    recommended_labels,
    stable_api_versions,
)

POLICIES = containers.POLICIES + objects.POLICIES

__all__ = [
    "EXPECTED_LABEL_VALUES",
    "POLICIES",
    "RECOMMENDED_LABELS",
    "REQUIRE_CPU_LIMIT",
    "REQUIRE_DIGEST",
    "REQUIRE_READ_ONLY_ROOT",
    "container_probes",
    "container_resources",
    "dedicated_service_account",
    "image_tag_pinned",
    "no_bare_pods",
    "no_default_namespace",
    "no_service_account_token_automount",
    "parse_image",
    "read_only_root_filesystem",
    "recommended_labels",
    "stable_api_versions",
]
