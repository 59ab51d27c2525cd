"""BundledMonitoring: Prometheus, Alertmanager, Grafana and kube-state-metrics in the monitoring
namespace.

Pure builders describe every object (the hardened workload of each server, what the servers read,
the namespaced RBAC of Prometheus' discovery and of kube-state-metrics, the opt-in ClusterRole for
the kubelets' volume stats, the NetworkPolicies derived from who talks to whom); the component
registers what they return.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import yaml

from components.config import MonitoringSettings
from components.contracts import MetricsEndpoint
from components.kit import network, workload
from components.kit.context import TierContext
from components.kit.objects import Manifest, config_map, digest, register, secret, workload_kit
from components.labels import CLUSTER_SCOPE, NEEDS_KUBERNETES_API
from components.monitoring import server_workloads as servers
from components.monitoring.alertmanager_config import alertmanager_config
from components.monitoring.dashboards import dashboards, provider_config
from components.monitoring.prometheus_config import RULES_DIRECTORY, prometheus_config
from components.monitoring.rules import rule_files

SERVERS = ("prometheus", "alertmanager", "grafana")
KUBE_STATE_METRICS = "kube-state-metrics"
DASHBOARDS_DIRECTORY = "/etc/grafana/dashboards"


@dataclass(frozen=True)
class BundledMonitoringArgs:
    settings: MonitoringSettings
    # ctx.protect: the servers' StatefulSets and claims; ctx.after: the namespaces objects go into.
    context: TierContext
    namespace: str
    environment: str
    # Metrics endpoints other components declare (the app's services, exporters).
    endpoints: Sequence[MetricsEndpoint]
    # Namespaces whose alerts this stack owns (volume and pod alerts are limited to them).
    platform_namespaces: Sequence[str]
    grafana_admin_password: pulumi.Output[str]
    # Secret config values receivers may reference (None where unset: dev only).
    receiver_secrets: Mapping[str, pulumi.Output[str] | None]


def own_endpoints(namespace: str, kube_state_metrics: bool = False) -> list[MetricsEndpoint]:
    endpoints = [MetricsEndpoint(name, namespace, name, "http") for name in SERVERS]
    if kube_state_metrics:
        endpoints.append(
            MetricsEndpoint(
                KUBE_STATE_METRICS,
                namespace,
                KUBE_STATE_METRICS,
                "http",
                port_number=servers.KUBE_STATE_METRICS_PORT,
                honor_labels=True,
            )
        )
    return endpoints


def scrape_port(endpoint: MetricsEndpoint, namespace: str) -> int:
    """The port Prometheus reaches an endpoint on: the servers' own, or what the endpoint declares."""
    if endpoint.namespace == namespace and endpoint.component in SERVERS:
        return servers.PORTS[endpoint.component]
    assert endpoint.port_number is not None, endpoint
    return endpoint.port_number


def _role_pair(
    logical: str, name: str, namespace: str, labels: Mapping[str, str], rules: Any, subject: Mapping[str, str]
) -> list[Manifest]:
    """A Role and its binding to one ServiceAccount (the binding after the Role)."""
    return [
        Manifest(logical, "Role", {"metadata": workload.metadata(name, namespace, labels), "rules": rules}),
        Manifest(
            f"{logical}-binding",
            "RoleBinding",
            {
                "metadata": workload.metadata(name, namespace, labels),
                "role_ref": {"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", **subject}],
            },
            after=(logical,),
        ),
    ]


def prometheus_manifests(
    name: str,
    spec: workload.WorkloadSpec,
    s: MonitoringSettings,
    config: Mapping[str, Any],
    rules: Mapping[str, Any],
    scraped_namespaces: Sequence[str],
    protect: bool,
) -> list[Manifest]:
    """Discovery RBAC per scraped namespace, configuration, rules and the StatefulSet."""
    identity = spec.identity
    ns, labels = identity.namespace, identity.labels
    subject = {"name": identity.service_account_name, "namespace": ns}
    manifests: list[Manifest] = []
    for scraped in scraped_namespaces:
        manifests += _role_pair(
            f"{name}-prometheus-discovery-{scraped}",
            "prometheus-discovery",
            scraped,
            labels,
            servers.discovery_role_rules(),
            subject,
        )
    manifests += [
        config_map(
            f"{name}-prometheus-config",
            "prometheus-config",
            ns,
            labels,
            {"prometheus.yml": yaml.safe_dump(dict(config), sort_keys=False)},
        ),
        config_map(
            f"{name}-prometheus-rules",
            "prometheus-rules",
            ns,
            labels,
            {f: yaml.safe_dump(c, sort_keys=False) for f, c in rules.items()},
        ),
    ]
    claims = [workload.claim_template("data", s.storage.prometheus, s.storage.storage_class)]
    statefulset = workload.statefulset_spec(
        spec, digest({"config": config, "rules": rules}), "prometheus", claims, protect
    )
    pod = statefulset["template"]["spec"]
    # A mounted file, not the directory: the image keeps its own consoles next to it.
    config_source = {"config_map": {"name": "prometheus-config"}}
    workload.mount(pod, "config", "/etc/prometheus/prometheus.yml", config_source, sub_path="prometheus.yml")
    workload.mount(pod, "rules", RULES_DIRECTORY, {"config_map": {"name": "prometheus-rules"}})
    workload.mount(pod, "data", "/prometheus", None, read_only=False)
    api_use = "service discovery: lists pods, services and endpointslices"
    if s.node_proxy():
        api_use += "; reads the nodes' metrics (kubelet, cAdvisor, node_exporter) through the API server's node proxy"
        manifests += kubelet_access_manifests(name, identity, node_proxy_settings(s))
    metadata = {**workload.metadata("prometheus", ns, labels), "annotations": {NEEDS_KUBERNETES_API: api_use}}
    manifests.append(
        Manifest(f"{name}-prometheus", "StatefulSet", {"metadata": metadata, "spec": statefulset}, stateful=True)
    )
    return manifests


def node_proxy_settings(s: MonitoringSettings) -> list[str]:
    """The settings that read the nodes through the API server proxy, as they are written."""
    return [
        key
        for key, on in (
            ("monitoring.kubeletVolumeStats", s.kubelet_volume_stats),
            ("monitoring.cadvisor", s.cadvisor),
            ("monitoring.nodeExporter.enabled", s.node_exporter.enabled),
        )
        if on
    ]


def kubelet_access_manifests(
    name: str, prometheus: workload.WorkloadIdentity, settings: Sequence[str]
) -> list[Manifest]:
    """monitoring.kubeletVolumeStats, .cadvisor, .nodeExporter: nodes are cluster-scoped, so reading
    their metrics through the API server proxy needs the program's only ClusterRole. Named after the
    namespace: cluster-scoped names are shared by every stack on the cluster."""
    cluster_name = f"{prometheus.namespace}-prometheus-kubelet"
    why = {CLUSTER_SCOPE: f"{', '.join(settings)}: Prometheus reads every node's metrics through the API server proxy"}
    metadata = {"name": cluster_name, "labels": dict(prometheus.labels), "annotations": why}
    role = f"{name}-prometheus-kubelet"
    subject = {"kind": "ServiceAccount", "name": prometheus.service_account_name, "namespace": prometheus.namespace}
    return [
        Manifest(role, "ClusterRole", {"metadata": metadata, "rules": servers.kubelet_cluster_role_rules()}),
        Manifest(
            f"{role}-binding",
            "ClusterRoleBinding",
            {
                "metadata": metadata,
                "role_ref": {"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
                "subjects": [subject],
            },
            after=(role,),
        ),
    ]


def alertmanager_manifests(
    name: str, spec: workload.WorkloadSpec, s: MonitoringSettings, config: pulumi.Output[str], protect: bool
) -> list[Manifest]:
    """Its configuration holds webhook URLs, so it lives in a Secret; the pod rolls on a digest of it."""
    identity = spec.identity
    ns, labels = identity.namespace, identity.labels
    # A digest of the configuration rolls the pod on a change and reveals nothing of the URLs.
    checksum = pulumi.Output.unsecret(config.apply(lambda text: hashlib.sha256(text.encode()).hexdigest()))
    claims = [workload.claim_template("data", s.storage.alertmanager, s.storage.storage_class)]
    statefulset = workload.statefulset_spec(spec, checksum, "alertmanager", claims, protect)
    pod = statefulset["template"]["spec"]
    workload.mount(pod, "config", "/etc/alertmanager", {"secret": {"secret_name": "alertmanager-config"}})
    workload.mount(pod, "data", "/alertmanager", None, read_only=False)
    return [
        secret(f"{name}-alertmanager-config", "alertmanager-config", ns, labels, {"alertmanager.yml": config}),
        Manifest(
            f"{name}-alertmanager",
            "StatefulSet",
            {"metadata": workload.metadata("alertmanager", ns, labels), "spec": statefulset},
            stateful=True,
        ),
    ]


def grafana_manifests(
    name: str, spec: workload.WorkloadSpec, s: MonitoringSettings, admin_password: pulumi.Output[str], prometheus: str
) -> list[Manifest]:
    """The admin password from the generated credential, a provisioned datasource, the dashboards."""
    identity = spec.identity
    ns, labels = identity.namespace, identity.labels
    datasources = servers.grafana_datasources(prometheus)
    boards = {f: json.dumps(d, indent=1, sort_keys=True) for f, d in dashboards(s).items()}
    provider = yaml.safe_dump(provider_config(DASHBOARDS_DIRECTORY), sort_keys=False)
    read_at_start = {
        "env": servers.GRAFANA_ENV,
        "datasources": datasources,
        "dashboards": boards,
        "provider": provider,
    }
    checksum = pulumi.Output.unsecret(admin_password.apply(lambda p: digest({**read_at_start, "password": p})))
    deployment = workload.deployment_spec(spec, checksum)
    pod = deployment["template"]["spec"]
    secret_file = {"secret": {"secret_name": servers.GRAFANA_ADMIN_SECRET, "default_mode": 0o440}}
    workload.mount(pod, "admin", servers.GRAFANA_ADMIN_DIRECTORY, secret_file)
    for volume, path, source in (
        ("datasources", "/etc/grafana/provisioning/datasources", "grafana-datasources"),
        ("dashboard-provider", "/etc/grafana/provisioning/dashboards", "grafana-dashboard-provider"),
        ("dashboards", DASHBOARDS_DIRECTORY, "grafana-dashboards"),
    ):
        workload.mount(pod, volume, path, {"config_map": {"name": source}})
    return [
        secret(f"{name}-grafana-admin", servers.GRAFANA_ADMIN_SECRET, ns, labels, {"password": admin_password}),
        config_map(
            f"{name}-grafana-datasources",
            "grafana-datasources",
            ns,
            labels,
            {"datasources.yaml": yaml.safe_dump(datasources, sort_keys=False)},
        ),
        config_map(f"{name}-grafana-dashboards", "grafana-dashboards", ns, labels, boards),
        config_map(
            f"{name}-grafana-dashboard-provider",
            "grafana-dashboard-provider",
            ns,
            labels,
            {"dashboards.yaml": provider},
        ),
        Manifest(
            f"{name}-grafana",
            "Deployment",
            {"metadata": workload.metadata("grafana", ns, labels), "spec": deployment},
        ),
    ]


def kube_state_metrics_manifests(
    name: str, spec: workload.WorkloadSpec, watched_namespaces: Sequence[str]
) -> list[Manifest]:
    """list/watch of its resources in each platform namespace (Roles, no ClusterRole: it runs with
    --namespaces), and a token to call the API with."""
    identity = spec.identity
    ns, labels = identity.namespace, identity.labels
    subject = {"name": identity.service_account_name, "namespace": ns}
    manifests: list[Manifest] = []
    for watched in sorted(set(watched_namespaces)):
        manifests += _role_pair(
            f"{name}-kube-state-metrics-{watched}",
            KUBE_STATE_METRICS,
            watched,
            labels,
            servers.kube_state_metrics_role_rules(),
            subject,
        )
    deployment = workload.deployment_spec(spec, digest({"env": {}, "args": list(spec.args or ())}))
    watched_resources = sorted(r for group in servers.KUBE_STATE_METRICS_RESOURCES.values() for r in group)
    api_use = f"lists and watches {', '.join(watched_resources)} in the platform namespaces"
    metadata = {**workload.metadata(KUBE_STATE_METRICS, ns, labels), "annotations": {NEEDS_KUBERNETES_API: api_use}}
    manifests.append(Manifest(f"{name}-kube-state-metrics", "Deployment", {"metadata": metadata, "spec": deployment}))
    return manifests


def bundled_manifests(name: str, args: BundledMonitoringArgs, prometheus_url: str) -> list[Manifest]:
    """Every object of bundled monitoring, in registration order."""
    s, ns, protect = args.settings, args.namespace, args.context.protect
    instance = args.context.instance
    ksm = s.kube_state_metrics.enabled
    images = {
        "prometheus": s.images.prometheus,
        "alertmanager": s.images.alertmanager,
        "grafana": s.images.grafana,
        KUBE_STATE_METRICS: s.images.kube_state_metrics,
    }
    identities = {server: servers.server_identity(server, ns, instance, image) for server, image in images.items()}
    specs = {
        "prometheus": servers.prometheus_workload(s, identities["prometheus"]),
        "alertmanager": servers.alertmanager_workload(s, identities["alertmanager"]),
        "grafana": servers.grafana_workload(s, identities["grafana"]),
    }
    if ksm:
        specs[KUBE_STATE_METRICS] = servers.kube_state_metrics_workload(
            s, identities[KUBE_STATE_METRICS], args.platform_namespaces
        )
    endpoints = [*args.endpoints, *own_endpoints(ns, ksm)]
    selectors = {server: identity.selector for server, identity in identities.items()}
    scrape_targets = [(e.namespace, scrape_port(e, ns)) for e in endpoints]
    # The namespace denies everything; these allow exactly the paths the servers use.
    policies = {
        "prometheus": network.prometheus_policy_spec(selectors, servers.PORTS, scrape_targets, s.api_server_cidr),
        "alertmanager": network.alertmanager_policy_spec(selectors, servers.PORTS, args.context.network),
        "grafana": network.grafana_policy_spec(selectors, servers.PORTS, s.grafana.allow_from_namespaces),
        KUBE_STATE_METRICS: network.kube_state_metrics_policy_spec(selectors, servers.PORTS, s.api_server_cidr),
    }
    config_env = {"grafana": servers.GRAFANA_ENV}
    manifests: list[Manifest] = []
    for server, spec in specs.items():
        # Only Prometheus and kube-state-metrics call the API; their pods opt in (WorkloadSpec.api_token).
        manifests += workload_kit(
            f"{name}-{server}", spec.identity, spec.ports, policies[server], env=config_env.get(server, {})
        )

    alertmanager = MetricsEndpoint("alertmanager", ns, "alertmanager", "http")
    config = prometheus_config(s, endpoints, alertmanager, args.environment, args.platform_namespaces)
    rules = rule_files(s, args.platform_namespaces)
    scraped = sorted({e.namespace for e in endpoints})
    manifests += prometheus_manifests(name, specs["prometheus"], s, config, rules, scraped, protect)

    set_secrets = {k: v for k, v in args.receiver_secrets.items() if v is not None}
    unset = [k for k, v in args.receiver_secrets.items() if v is None]
    resolved: pulumi.Output[dict[str, str]] = (
        pulumi.Output.all(**set_secrets) if set_secrets else pulumi.Output.from_input({})
    )
    am_config: pulumi.Output[str] = resolved.apply(
        lambda values: yaml.safe_dump(alertmanager_config(s, {**dict.fromkeys(unset), **values}), sort_keys=False)
    )
    manifests += alertmanager_manifests(name, specs["alertmanager"], s, am_config, protect)
    manifests += grafana_manifests(name, specs["grafana"], s, args.grafana_admin_password, prometheus_url)
    if ksm:
        manifests += kube_state_metrics_manifests(name, specs[KUBE_STATE_METRICS], args.platform_namespaces)
    return manifests


class BundledMonitoring(pulumi.ComponentResource):
    """The bundled servers, as `bundled_manifests` describes them."""

    prometheus_url: str

    def __init__(self, name: str, args: BundledMonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:monitoring:Bundled", name, None, opts)
        self.prometheus_url = f"http://prometheus.{args.namespace}.svc.cluster.local:{servers.PROMETHEUS_PORT}"
        register(bundled_manifests(name, args, self.prometheus_url), self, args.context)
        self.register_outputs({"prometheusUrl": self.prometheus_url})
