"""The app tier: one hardened AppService per enabled service, wired to the data tier's endpoints.

Besides the component, what the tier declares to the others, as contracts: the pods that connect
to each store, the metrics endpoints to scrape, and the services the edge may route to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

from components.app.app_service import AppService, AppServiceArgs, derived_env
from components.app.migration import migration_name, migration_selector
from components.config import DATA_STORES, AppSettings, MigrationSettings
from components.contracts import Backend, Client, DataEndpoint, MetricsEndpoint, MigrationPlan
from components.kit.context import TierContext
from components.kit.network import service_policy_spec
from components.labels import selector_labels


def declared_clients(
    settings: AppSettings, migrations: MigrationSettings | None, namespace: str, instance: str
) -> dict[str, list[Client]]:
    """Per store, the pods declared to connect to it: services by `connectsTo`, and the migration Job
    of the service that runs migrations (`migrations` None: none run). Only these reach a store."""
    clients: dict[str, list[Client]] = {store: [] for store in DATA_STORES}
    for name, svc in settings.enabled_services().items():
        for target in svc.connects_to:
            if target in clients:
                clients[target].append(Client(name, namespace, selector_labels(name, instance)))
    if migrations is not None:
        job = migration_name(migrations.service)
        clients["postgres"].append(Client(job, namespace, migration_selector(migrations.service, instance)))
    return clients


def metrics_endpoints(settings: AppSettings, namespace: str) -> list[MetricsEndpoint]:
    """The metrics endpoints the app's services declare (`metricsPath`)."""
    return [
        MetricsEndpoint(
            component=name,
            namespace=namespace,
            service=name,
            port=svc.metrics_port_name,
            path=svc.metrics_path,
            port_number=svc.ports[svc.metrics_port_name],
        )
        for name, svc in sorted(settings.enabled_services().items())
        if svc.metrics_path is not None
    ]


def backends(settings: AppSettings) -> dict[str, Backend]:
    """The services the edge may route to: the exposed ones, on their http port."""
    return {n: Backend(service=n, port=svc.http_port) for n, svc in settings.enabled_services().items() if svc.expose}


@dataclass(frozen=True)
class AppTierArgs:
    settings: AppSettings
    namespace: str
    # Instance and version; `after` holds the app namespace (a cluster rejects objects in a missing one).
    context: TierContext
    edge_namespace: str
    endpoints: Mapping[str, DataEndpoint]
    # Values a service may reference under secretEnv, by credential name (secret Outputs).
    credentials: Mapping[str, pulumi.Output[str] | None]
    registry_password: pulumi.Output[str] | None = None
    docker_provider: pulumi.ProviderResource | None = None
    project_dir: str = "."
    # Pod labels of the metrics scraper in the monitoring namespace; None: metrics ports stay closed.
    metrics_scraper: Mapping[str, str] | None = None
    # Per service: the migration to run before its Deployment changes.
    migrations: Mapping[str, MigrationPlan] = field(default_factory=dict)


class AppTier(pulumi.ComponentResource):
    services: dict[str, AppService]

    def __init__(self, name: str, args: AppTierArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:app:AppTier", name, None, opts)
        services = args.settings.enabled_services()
        selectors = {svc_name: selector_labels(svc_name, args.context.instance) for svc_name in services}
        self.services = {}
        for svc_name, declared in services.items():
            # A credential with nothing behind it (in-cluster Chroma's token) leaves its variable out.
            svc = declared.model_copy(
                update={"secret_env": {e: c for e, c in declared.secret_env.items() if c in args.credentials}}
            )
            policy = service_policy_spec(
                svc_name,
                selectors[svc_name],
                services,
                selectors,
                args.endpoints,
                args.context.network,
                args.edge_namespace,
                args.metrics_scraper,
            )
            self.services[svc_name] = AppService(
                svc_name,
                AppServiceArgs(
                    settings=svc,
                    namespace=args.namespace,
                    context=args.context,
                    env=derived_env(svc, services, args.endpoints, args.namespace, args.settings.cors_origins),
                    secret_env={env: args.credentials[cred] for env, cred in svc.secret_env.items()},
                    network_policy=policy,
                    termination_grace_period_seconds=args.settings.grace_period(svc),
                    registry_password=args.registry_password,
                    docker_provider=args.docker_provider,
                    project_dir=args.project_dir,
                    migration=args.migrations.get(svc_name),
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({n: s.dns_name for n, s in self.services.items()})
