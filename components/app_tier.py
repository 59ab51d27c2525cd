"""The app tier: one hardened AppService per enabled service, wired to the data tier's endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

from components.config import AppSettings, NetworkSettings
from components.data.migration import MigrationPlan
from components.labels import selector_labels
from components.network import DataEndpoint, service_policy_spec
from components.service import AppService, AppServiceArgs, derived_env


@dataclass(frozen=True)
class AppTierArgs:
    settings: AppSettings
    namespace: str
    instance: str
    network: NetworkSettings
    edge_namespace: str
    endpoints: Mapping[str, DataEndpoint]
    # Values a service may reference under secretEnv, by credential name (secret Outputs).
    credentials: Mapping[str, pulumi.Output[str] | None]
    registry_password: pulumi.Output[str] | None = None
    docker_provider: pulumi.ProviderResource | None = None
    project_dir: str = "."
    # Created before any object inside it (a cluster rejects objects in a missing namespace).
    namespace_resource: pulumi.Resource | None = None
    # Pod labels of the metrics scraper in the monitoring namespace; None: metrics ports stay closed.
    metrics_scraper: Mapping[str, str] | None = None
    # Per service: the migration to run before its Deployment changes.
    migrations: Mapping[str, MigrationPlan] = field(default_factory=dict)


class AppTier(pulumi.ComponentResource):
    services: dict[str, AppService]

    def __init__(self, name: str, args: AppTierArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:app:AppTier", name, None, opts)
        services = args.settings.enabled_services()
        selectors = {svc_name: selector_labels(svc_name, args.instance) for svc_name in services}
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
                args.network,
                args.edge_namespace,
                args.metrics_scraper,
            )
            self.services[svc_name] = AppService(
                svc_name,
                AppServiceArgs(
                    settings=svc,
                    namespace=args.namespace,
                    instance=args.instance,
                    env=derived_env(svc, services, args.endpoints, args.namespace, args.settings.cors_origins),
                    secret_env={env: args.credentials[cred] for env, cred in svc.secret_env.items()},
                    network_policy=policy,
                    termination_grace_period_seconds=args.settings.grace_period(svc),
                    registry_password=args.registry_password,
                    docker_provider=args.docker_provider,
                    project_dir=args.project_dir,
                    depends_on=[args.namespace_resource] if args.namespace_resource else [],
                    migration=args.migrations.get(svc_name),
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({n: s.dns_name for n, s in self.services.items()})
