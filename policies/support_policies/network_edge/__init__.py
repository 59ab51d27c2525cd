"""Network and edge: `network_policies.py` (default deny, allow policies, public Services), `tls.py`
(HTTPS for every Ingress rule and HTTPRoute, no snippets), `hosts.py` (hostnames and host+path
uniqueness).
"""

from __future__ import annotations

from . import hosts, network_policies, tls
from .hosts import edge_host_sanity, edge_unique_host_paths
from .network_policies import (
    default_deny_directions,
    default_deny_network_policy,
    network_policy_coverage,
    no_public_services,
)
from .tls import certificate_covers, httproute_tls, ingress_no_snippets, ingress_tls, is_redirect_only, listener_matches

POLICIES = network_policies.POLICIES + tls.POLICIES + hosts.POLICIES

__all__ = [
    "POLICIES",
    "certificate_covers",
    "default_deny_directions",
    "default_deny_network_policy",
    "edge_host_sanity",
    "edge_unique_host_paths",
    "httproute_tls",
    "ingress_no_snippets",
    "ingress_tls",
    "is_redirect_only",
    "listener_matches",
    "network_policy_coverage",
    "no_public_services",
]
