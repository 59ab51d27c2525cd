"""BundledMonitoring: Prometheus, Alertmanager, Grafana and kube-state-metrics in the monitoring
namespace.

Everything goes through the hardened workload builder; this component only adds what the servers
read (configuration, rules, claims), the namespaced RBAC of Prometheus' discovery and of
kube-state-metrics, the opt-in ClusterRole for the kubelets' volume stats, and the NetworkPolicies
derived from who talks to whom.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import workload
from components.config import MonitoringSettings, NetworkSettings, ServiceSettings
from components.labels import CLUSTER_SCOPE, NEEDS_KUBERNETES_API, image_version, selector_labels, standard_labels
from components.monitoring import servers
from components.monitoring.alertmanager_config import alertmanager_config
from components.monitoring.dashboards import dashboards, provider_config
from components.monitoring.prometheus_config import RULES_DIRECTORY, MetricsEndpoint, prometheus_config
from components.monitoring.rules import rule_files

SERVERS = ("prometheus", "alertmanager", "grafana")
KUBE_STATE_METRICS = "kube-state-metrics"
DASHBOARDS_DIRECTORY = "/etc/grafana/dashboards"


@dataclass(frozen=True)
class BundledMonitoringArgs:
    settings: MonitoringSettings
    network: NetworkSettings
    namespace: str
    instance: str
    version: str
    environment: str
    # Metrics endpoints other components declare (the app's services, exporters).
    endpoints: Sequence[MetricsEndpoint]
    # Namespaces whose alerts this stack owns (volume and pod alerts are limited to them).
    platform_namespaces: Sequence[str]
    grafana_admin_password: pulumi.Output[str]
    # Secret config values receivers may reference (None where unset: dev only).
    receiver_secrets: Mapping[str, pulumi.Output[str] | None]
    protect: bool = False
    depends_on: list[pulumi.Resource] = field(default_factory=list)


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


def digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def with_mounts(pod: dict[str, Any], mounts: list[tuple[str, str, dict[str, Any] | None]]) -> dict[str, Any]:
    """Add read-only config volumes (name, path, source) and claim mounts (source None) to a pod spec."""
    container = pod["containers"][0]
    for name, path, source in mounts:
        container["volume_mounts"].append({"name": name, "mount_path": path, "read_only": source is not None})
        if source is not None:
            pod["volumes"].append({"name": name, **source})
    return pod


def secret_data(key: str, value: pulumi.Output[str]) -> dict[str, pulumi.Output[str]]:
    # Secret again, whatever the source said: the data must never be stored in plaintext state.
    data: dict[str, pulumi.Output[str]] = {}
    data[key] = pulumi.Output.secret(value)
    return data


def claim(name: str, size: str, storage_class: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"access_modes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storage_class_name"] = storage_class
    return {"metadata": {"name": name}, "spec": spec}


class BundledMonitoring(pulumi.ComponentResource):
    prometheus_url: str
    selectors: dict[str, dict[str, str]]

    def __init__(self, name: str, args: BundledMonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:monitoring:Bundled", name, None, opts)
        s = args.settings
        ns = args.namespace
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        # Production keeps the servers' data through any Pulumi operation (policy protect-stateful-resources).
        stateful = pulumi.ResourceOptions(
            parent=self, depends_on=list(args.depends_on), protect=args.protect, retain_on_delete=args.protect
        )
        ksm = s.kube_state_metrics.enabled
        self.selectors = {n: selector_labels(n, args.instance) for n in (*SERVERS, KUBE_STATE_METRICS)}
        services: dict[str, ServiceSettings] = {
            "prometheus": servers.prometheus_service(s),
            "alertmanager": servers.alertmanager_service(s),
            "grafana": servers.grafana_service(s),
        }
        if ksm:
            services[KUBE_STATE_METRICS] = servers.kube_state_metrics_service(s, args.platform_namespaces)
        identities: dict[str, workload.WorkloadIdentity] = {}
        for server, svc in services.items():
            assert svc.image is not None
            identities[server] = workload.WorkloadIdentity(
                name=server,
                namespace=ns,
                labels=standard_labels(server, args.instance, svc.component, image_version(svc.image)),
                selector=self.selectors[server],
                config_map_name=f"{server}-env",
                secret_name=None,
                service_account_name=server,
            )
            identity = identities[server]
            k8s.core.v1.ServiceAccount(
                f"{name}-{server}-serviceaccount",
                metadata=workload.metadata(server, ns, identity.labels),
                # Only Prometheus and kube-state-metrics call the API; their pods opt in below.
                automount_service_account_token=False,
                opts=child,
            )
            k8s.core.v1.ConfigMap(
                f"{name}-{server}-env",
                metadata=workload.metadata(identity.config_map_name, ns, identity.labels),
                data=dict(sorted(svc.env.items())),
                opts=child,
            )
            k8s.core.v1.Service(
                f"{name}-{server}-service",
                metadata=workload.metadata(server, ns, identity.labels),
                spec=workload.service_spec(identity, svc),
                opts=child,
            )
        self.prometheus_url = f"http://prometheus.{ns}.svc.cluster.local:{servers.PROMETHEUS_PORT}"
        endpoints = [*args.endpoints, *own_endpoints(ns, ksm)]
        scraped_namespaces = sorted({e.namespace for e in endpoints})

        # --- Prometheus: discovery RBAC per scraped namespace, config, rules, StatefulSet.
        prom = identities["prometheus"]
        for scraped in scraped_namespaces:
            role = k8s.rbac.v1.Role(
                f"{name}-prometheus-discovery-{scraped}",
                metadata=workload.metadata("prometheus-discovery", scraped, prom.labels),
                rules=servers.discovery_role_rules(),
                opts=child,
            )
            k8s.rbac.v1.RoleBinding(
                f"{name}-prometheus-discovery-{scraped}-binding",
                metadata=workload.metadata("prometheus-discovery", scraped, prom.labels),
                role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": "prometheus-discovery"},
                subjects=[{"kind": "ServiceAccount", "name": prom.service_account_name, "namespace": ns}],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, role]),
            )
        alertmanager_endpoint = MetricsEndpoint("alertmanager", ns, "alertmanager", "http")
        prom_config = prometheus_config(s, endpoints, alertmanager_endpoint, args.environment)
        rules = rule_files(s, args.platform_namespaces)
        k8s.core.v1.ConfigMap(
            f"{name}-prometheus-config",
            metadata=workload.metadata("prometheus-config", ns, prom.labels),
            data={"prometheus.yml": yaml.safe_dump(prom_config, sort_keys=False)},
            opts=child,
        )
        k8s.core.v1.ConfigMap(
            f"{name}-prometheus-rules",
            metadata=workload.metadata("prometheus-rules", ns, prom.labels),
            data={f: yaml.safe_dump(c, sort_keys=False) for f, c in rules.items()},
            opts=child,
        )
        prom_svc = services["prometheus"]
        assert prom_svc.image is not None and prom_svc.termination_grace_period_seconds is not None
        prom_spec = workload.statefulset_spec(
            prom,
            prom_svc,
            prom_svc.image,
            digest({"config": prom_config, "rules": rules}),
            prom_svc.termination_grace_period_seconds,
            "prometheus",
            [claim("data", s.storage.prometheus, s.storage.storage_class)],
        )
        pod = prom_spec["template"]["spec"]
        pod["automount_service_account_token"] = True  # service discovery reads the API
        with_mounts(
            pod,
            [
                ("config", "/etc/prometheus/prometheus.yml", {"config_map": {"name": "prometheus-config"}}),
                ("rules", RULES_DIRECTORY, {"config_map": {"name": "prometheus-rules"}}),
                ("data", "/prometheus", None),
            ],
        )
        # A mounted file, not the directory: the image keeps its own consoles next to it.
        pod["containers"][0]["volume_mounts"][-3]["sub_path"] = "prometheus.yml"
        if args.protect:
            prom_spec["persistent_volume_claim_retention_policy"] = {"when_deleted": "Retain", "when_scaled": "Retain"}
        prom_metadata = workload.metadata("prometheus", ns, prom.labels)
        api_use = "service discovery: lists pods, services and endpointslices"
        if s.kubelet_volume_stats:
            api_use += "; reads the kubelets' metrics through the API server's node proxy"
        prom_metadata["annotations"] = {NEEDS_KUBERNETES_API: api_use}
        if s.kubelet_volume_stats:
            self._kubelet_access(name, prom, args)
        k8s.apps.v1.StatefulSet(
            f"{name}-prometheus",
            metadata=prom_metadata,
            spec=prom_spec,
            opts=stateful,
        )

        # --- Alertmanager: its configuration holds webhook URLs, so it lives in a Secret.
        am = identities["alertmanager"]
        set_secrets = {k: v for k, v in args.receiver_secrets.items() if v is not None}
        unset = [k for k, v in args.receiver_secrets.items() if v is None]
        resolved: pulumi.Output[dict[str, str]] = (
            pulumi.Output.all(**set_secrets) if set_secrets else pulumi.Output.from_input({})
        )
        am_config: pulumi.Output[str] = resolved.apply(
            lambda values: yaml.safe_dump(alertmanager_config(s, {**dict.fromkeys(unset), **values}), sort_keys=False)
        )
        k8s.core.v1.Secret(
            f"{name}-alertmanager-config",
            metadata=workload.metadata("alertmanager-config", ns, am.labels),
            type="Opaque",
            string_data=secret_data("alertmanager.yml", am_config),
            opts=child,
        )
        am_svc = services["alertmanager"]
        assert am_svc.image is not None
        am_spec = workload.statefulset_spec(
            am,
            am_svc,
            am_svc.image,
            # A digest of the configuration rolls the pod on a change and reveals nothing of the URLs.
            pulumi.Output.unsecret(am_config.apply(lambda text: hashlib.sha256(text.encode()).hexdigest())),
            am_svc.pre_stop_sleep_seconds + 30,
            "alertmanager",
            [claim("data", s.storage.alertmanager, s.storage.storage_class)],
        )
        with_mounts(
            am_spec["template"]["spec"],
            [
                ("config", "/etc/alertmanager", {"secret": {"secret_name": "alertmanager-config"}}),
                ("data", "/alertmanager", None),
            ],
        )
        if args.protect:
            am_spec["persistent_volume_claim_retention_policy"] = {"when_deleted": "Retain", "when_scaled": "Retain"}
        k8s.apps.v1.StatefulSet(
            f"{name}-alertmanager",
            metadata=workload.metadata("alertmanager", ns, am.labels),
            spec=am_spec,
            opts=stateful,
        )

        # --- Grafana: admin password from the generated credential, a provisioned datasource.
        gf = identities["grafana"]
        k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata=workload.metadata("grafana-admin", ns, gf.labels),
            type="Opaque",
            string_data=secret_data("password", args.grafana_admin_password),
            opts=child,
        )
        datasources = servers.grafana_datasources(self.prometheus_url)
        k8s.core.v1.ConfigMap(
            f"{name}-grafana-datasources",
            metadata=workload.metadata("grafana-datasources", ns, gf.labels),
            data={"datasources.yaml": yaml.safe_dump(datasources, sort_keys=False)},
            opts=child,
        )
        boards = {f: json.dumps(d, indent=1, sort_keys=True) for f, d in dashboards(s).items()}
        k8s.core.v1.ConfigMap(
            f"{name}-grafana-dashboards",
            metadata=workload.metadata("grafana-dashboards", ns, gf.labels),
            data=boards,
            opts=child,
        )
        provider = yaml.safe_dump(provider_config(DASHBOARDS_DIRECTORY), sort_keys=False)
        k8s.core.v1.ConfigMap(
            f"{name}-grafana-dashboard-provider",
            metadata=workload.metadata("grafana-dashboard-provider", ns, gf.labels),
            data={"dashboards.yaml": provider},
            opts=child,
        )
        gf_svc = services["grafana"]
        assert gf_svc.image is not None
        checksum = pulumi.Output.unsecret(
            args.grafana_admin_password.apply(
                lambda password: digest(
                    {
                        "env": gf_svc.env,
                        "datasources": datasources,
                        "dashboards": boards,
                        "provider": provider,
                        "password": password,
                    }
                )
            )
        )
        gf_spec = workload.deployment_spec(gf, gf_svc, gf_svc.image, checksum, gf_svc.pre_stop_sleep_seconds + 30)
        gf_pod = gf_spec["template"]["spec"]
        gf_pod["containers"][0]["env"] = [
            {"name": servers.GRAFANA_ADMIN_PASSWORD_ENV, "value": f"{servers.GRAFANA_ADMIN_DIRECTORY}/password"}
        ]
        with_mounts(
            gf_pod,
            [
                (
                    "admin",
                    servers.GRAFANA_ADMIN_DIRECTORY,
                    {"secret": {"secret_name": "grafana-admin", "default_mode": 0o440}},
                ),
                (
                    "datasources",
                    "/etc/grafana/provisioning/datasources",
                    {"config_map": {"name": "grafana-datasources"}},
                ),
                (
                    "dashboard-provider",
                    "/etc/grafana/provisioning/dashboards",
                    {"config_map": {"name": "grafana-dashboard-provider"}},
                ),
                ("dashboards", DASHBOARDS_DIRECTORY, {"config_map": {"name": "grafana-dashboards"}}),
            ],
        )
        k8s.apps.v1.Deployment(
            f"{name}-grafana",
            metadata=workload.metadata("grafana", ns, gf.labels),
            spec=gf_spec,
            opts=child,
        )

        if ksm:
            self._kube_state_metrics(name, identities[KUBE_STATE_METRICS], services[KUBE_STATE_METRICS], args)

        # --- NetworkPolicies: the namespace denies everything; these allow exactly the paths above.
        scrape_targets = [(e.namespace, self._port_of(e, args)) for e in endpoints]
        policies = {
            "prometheus": servers.prometheus_policy_spec(self.selectors, scrape_targets, s.api_server_cidr),
            "alertmanager": servers.alertmanager_policy_spec(self.selectors, args.network),
            "grafana": servers.grafana_policy_spec(self.selectors, s.grafana.allow_from_namespaces),
        }
        if ksm:
            policies[KUBE_STATE_METRICS] = servers.kube_state_metrics_policy_spec(self.selectors, s.api_server_cidr)
        for server, spec in policies.items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{server}-networkpolicy",
                metadata=workload.metadata(server, ns, identities[server].labels),
                spec=spec,
                opts=child,
            )
        self.register_outputs({"prometheusUrl": self.prometheus_url})

    def _kube_state_metrics(
        self, name: str, identity: workload.WorkloadIdentity, svc: ServiceSettings, args: BundledMonitoringArgs
    ) -> None:
        """kube-state-metrics: list/watch of its resources in each platform namespace (Roles, no
        ClusterRole: it runs with --namespaces), and a token to call the API with."""
        ns = args.namespace
        for watched in sorted(set(args.platform_namespaces)):
            role = k8s.rbac.v1.Role(
                f"{name}-kube-state-metrics-{watched}",
                metadata=workload.metadata(KUBE_STATE_METRICS, watched, identity.labels),
                rules=servers.kube_state_metrics_role_rules(),
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
            )
            k8s.rbac.v1.RoleBinding(
                f"{name}-kube-state-metrics-{watched}-binding",
                metadata=workload.metadata(KUBE_STATE_METRICS, watched, identity.labels),
                role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": KUBE_STATE_METRICS},
                subjects=[{"kind": "ServiceAccount", "name": identity.service_account_name, "namespace": ns}],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, role]),
            )
        assert svc.image is not None
        spec = workload.deployment_spec(
            identity, svc, svc.image, digest({"env": svc.env, "args": svc.args}), svc.pre_stop_sleep_seconds + 30
        )
        spec["template"]["spec"]["automount_service_account_token"] = True  # it lists and watches the API
        metadata = workload.metadata(KUBE_STATE_METRICS, ns, identity.labels)
        watched_resources = sorted(r for group in servers.KUBE_STATE_METRICS_RESOURCES.values() for r in group)
        metadata["annotations"] = {
            NEEDS_KUBERNETES_API: f"lists and watches {', '.join(watched_resources)} in the platform namespaces"
        }
        k8s.apps.v1.Deployment(
            f"{name}-kube-state-metrics",
            metadata=metadata,
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )

    def _kubelet_access(self, name: str, prom: workload.WorkloadIdentity, args: BundledMonitoringArgs) -> None:
        """monitoring.kubeletVolumeStats: nodes are cluster-scoped, so reading the kubelets' metrics
        through the API server proxy needs the program's only ClusterRole. Named after the namespace:
        cluster-scoped names are shared by every stack on the cluster."""
        cluster_name = f"{args.namespace}-prometheus-kubelet"
        labels = dict(prom.labels)
        why = {CLUSTER_SCOPE: "monitoring.kubeletVolumeStats: Prometheus reads every kubelet's volume stats"}
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-prometheus-kubelet",
            metadata={"name": cluster_name, "labels": labels, "annotations": why},
            rules=servers.kubelet_cluster_role_rules(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-prometheus-kubelet-binding",
            metadata={"name": cluster_name, "labels": labels, "annotations": why},
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            subjects=[{"kind": "ServiceAccount", "name": prom.service_account_name, "namespace": args.namespace}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, role]),
        )

    @staticmethod
    def _port_of(endpoint: MetricsEndpoint, args: BundledMonitoringArgs) -> int:
        ports = {
            "prometheus": servers.PROMETHEUS_PORT,
            "alertmanager": servers.ALERTMANAGER_PORT,
            "grafana": servers.GRAFANA_PORT,
        }
        if endpoint.namespace == args.namespace and endpoint.component in ports:
            return ports[endpoint.component]
        assert endpoint.port_number is not None, endpoint
        return endpoint.port_number
