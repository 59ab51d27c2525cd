"""The support platform's CrossGuard rules, grouped by theme; `__main__.py` builds the pack."""

from __future__ import annotations

from pulumi_policy import Policy

from . import availability, data_secrets, network_edge, pod_security, rbac, shared_decoding, workload_hygiene

# The pack decodes each resource once for all its policies (the SDK would once per policy): on
# import, so that the engine's analyzer and the tests' runner run the same code.
shared_decoding.install()

PACK_NAME = "support-platform-guardrails"

THEMES = (pod_security, workload_hygiene, network_edge, rbac, availability, data_secrets)


def all_policies() -> list[Policy]:
    """Every policy of every theme module, in catalogue order."""
    return [policy for theme in THEMES for policy in theme.POLICIES]
