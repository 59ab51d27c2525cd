"""Pod Security Standards, restricted profile (which includes baseline), on every pod template:
`baseline.py` holds the baseline controls, `restricted.py` the ones restricted adds.
"""

from __future__ import annotations

from . import baseline, restricted
from .baseline import (
    SAFE_SYSCTLS,
    pss_apparmor_not_unconfined,
    pss_default_proc_mount,
    pss_no_host_namespaces,
    pss_no_host_path_volumes,
    pss_no_host_ports,
    pss_no_privileged_containers,
    pss_no_probe_or_lifecycle_host,
    pss_no_windows_host_process,
    pss_restricted_selinux_options,
    pss_safe_sysctls,
)
from .restricted import (
    MINIMUM_UID,
    pss_no_privilege_escalation,
    pss_restricted_capabilities,
    pss_restricted_volume_types,
    pss_run_as_non_root,
    pss_seccomp_profile,
)

POLICIES = baseline.POLICIES + restricted.POLICIES

__all__ = [
    "MINIMUM_UID",
    "POLICIES",
    "SAFE_SYSCTLS",
    "pss_apparmor_not_unconfined",
    "pss_default_proc_mount",
    "pss_no_host_namespaces",
    "pss_no_host_path_volumes",
    "pss_no_host_ports",
    "pss_no_privilege_escalation",
    "pss_no_privileged_containers",
    "pss_no_probe_or_lifecycle_host",
    "pss_no_windows_host_process",
    "pss_restricted_capabilities",
    "pss_restricted_selinux_options",
    "pss_restricted_volume_types",
    "pss_run_as_non_root",
    "pss_safe_sysctls",
    "pss_seccomp_profile",
]
