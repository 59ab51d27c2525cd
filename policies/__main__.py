"""Builds the policy pack. Nothing else: the PolicyPack constructor starts the analyzer server and
blocks, so the rules live in `support_policies` where the tests import them.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from support_policies import PACK_NAME
from support_policies.availability import (
    hpa_sanity,
    pdb_allows_disruption,
    pdb_coverage,
    replica_spreading,
)
from support_policies.data_secrets import (
    explicit_kubernetes_provider,
    no_literal_secret_env,
    no_secrets_in_config_maps,
    protect_stateful_resources,
)
from support_policies.network_edge import (
    default_deny_network_policy,
    edge_host_sanity,
    edge_unique_host_paths,
    httproute_tls,
    ingress_tls,
    network_policy_coverage,
    no_public_services,
)
from support_policies.pod_security import (
    pss_apparmor_not_unconfined,
    pss_default_proc_mount,
    pss_no_host_namespaces,
    pss_no_host_path_volumes,
    pss_no_host_ports,
    pss_no_privilege_escalation,
    pss_no_privileged_containers,
    pss_no_probe_or_lifecycle_host,
    pss_no_windows_host_process,
    pss_restricted_capabilities,
    pss_restricted_selinux_options,
    pss_restricted_volume_types,
    pss_run_as_non_root,
    pss_safe_sysctls,
    pss_seccomp_profile,
)
from support_policies.workload_hygiene import (
    container_probes,
    container_resources,
    dedicated_service_account,
    image_tag_pinned,
    no_bare_pods,
    no_default_namespace,
    no_service_account_token_automount,
    read_only_root_filesystem,
    recommended_labels,
    stable_api_versions,
)

PolicyPack(
    name=PACK_NAME,
    # Without a config file every rule blocks; the per-stack files in config/ relax what is noisy.
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        # Pod security (PSS restricted, baseline included)
        pss_no_privileged_containers,
        pss_no_host_namespaces,
        pss_no_host_path_volumes,
        pss_no_host_ports,
        pss_default_proc_mount,
        pss_safe_sysctls,
        pss_apparmor_not_unconfined,
        pss_restricted_selinux_options,
        pss_no_windows_host_process,
        pss_no_probe_or_lifecycle_host,
        pss_restricted_capabilities,
        pss_no_privilege_escalation,
        pss_run_as_non_root,
        pss_seccomp_profile,
        pss_restricted_volume_types,
        # Workload hygiene
        container_resources,
        container_probes,
        image_tag_pinned,
        read_only_root_filesystem,
        dedicated_service_account,
        no_service_account_token_automount,
        no_default_namespace,
        recommended_labels,
        no_bare_pods,
        stable_api_versions,
        # Network and edge
        default_deny_network_policy,
        network_policy_coverage,
        no_public_services,
        ingress_tls,
        httproute_tls,
        edge_host_sanity,
        edge_unique_host_paths,
        # Availability
        pdb_coverage,
        pdb_allows_disruption,
        hpa_sanity,
        replica_spreading,
        # Data and secrets
        protect_stateful_resources,
        no_secrets_in_config_maps,
        no_literal_secret_env,
        explicit_kubernetes_provider,
    ],
)
