"""PgBouncer in front of the in-cluster PostgreSQL (data.postgres.pooler): a Deployment of the hardened
pod in the data namespace, its configuration from a ConfigMap and its user list from a Secret.

It takes over PostgreSQL's endpoint: the app's DATABASE_URL, its NetworkPolicies and the migration
point at PgBouncer, which admits exactly the clients PostgreSQL would have; PostgreSQL then admits
PgBouncer (and the data tier's own backup Jobs). tests/test_pooler.py runs the rendered configuration
in Debian's pgbouncer in front of a real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pulumi

from components.config import PostgresSettings
from components.contracts import Client, DataEndpoint
from components.data.server_config import PGBOUNCER_PORT, pgbouncer_ini, pgbouncer_userlist
from components.data.store_workload import RUN_AS_USER, StoreContext
from components.kit import workload
from components.kit.network import pooler_policy_spec
from components.kit.objects import Manifest, config_map, digest, register, secret, workload_kit
from components.labels import image_version, selector_labels, standard_labels

NAME = "pgbouncer"
PORT_NAME = "pgbouncer"
CONFIG_PATH = "/etc/pgbouncer/config"
AUTH_PATH = "/etc/pgbouncer/auth"
AUTH_FILE = f"{AUTH_PATH}/userlist.txt"
SECRET = "pgbouncer-auth"  # noqa: S105 (a Secret's name)
PRE_STOP_SECONDS = 5


def pooler_selector(instance: str) -> dict[str, str]:
    return selector_labels(NAME, instance)


def pooler_client(namespace: str, instance: str) -> Client:
    """PgBouncer as PostgreSQL's client: what PostgreSQL's NetworkPolicy admits instead of the app."""
    return Client(NAME, namespace, pooler_selector(instance))


@dataclass(frozen=True)
class PgBouncerArgs:
    settings: PostgresSettings
    # The data tier's context; `clients` are the app's pods that connect to PostgreSQL.
    context: StoreContext
    password: pulumi.Output[str]
    # PostgreSQL as the data tier publishes it: where PgBouncer connects, and the endpoint it replaces.
    server: DataEndpoint


def ready_command(s: PostgresSettings, port: int = PGBOUNCER_PORT) -> list[str]:
    """pg_isready needs no password: an authentication request is an answer (the image installs
    PostgreSQL's client next to PgBouncer)."""
    return [
        "pg_isready",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--username={s.user}",
        f"--dbname={s.database}",
        "--quiet",
    ]


def pooler_workload(s: PostgresSettings, ctx: StoreContext) -> workload.WorkloadSpec:
    pooler = s.pooler
    identity = workload.WorkloadIdentity(
        name=NAME,
        namespace=ctx.namespace,
        labels=standard_labels(NAME, ctx.tier.instance, "database-pooler", image_version(pooler.image)),
        selector=pooler_selector(ctx.tier.instance),
        config_map_name=f"{NAME}-config",
        secret_name=None,
        service_account_name=NAME,
    )
    tcp = {"tcp_socket": {"port": PORT_NAME}}
    return workload.WorkloadSpec(
        identity=identity,
        image=pooler.image,
        ports={PORT_NAME: PGBOUNCER_PORT},
        probes={
            "startup": workload.probe(tcp, period=2, failures=30, timeout=2, initial_delay=0),
            # Ready: PgBouncer answers the protocol (it asks for the password itself, so this does not
            # depend on PostgreSQL: a database outage shows in the app's readiness, not here).
            # Alive: it accepts connections.
            "readiness": workload.exec_probe(ready_command(s), period=5, failures=3),
            "liveness": workload.probe(tcp, period=10, failures=6, timeout=5, initial_delay=0),
        },
        resources=workload.resources_spec(pooler.resources),
        run_as_user=RUN_AS_USER,
        termination_grace_period_seconds=PRE_STOP_SECONDS + 30,
        writable_paths=["/tmp"],
        command=["/usr/bin/pgbouncer", f"{CONFIG_PATH}/pgbouncer.ini"],
        env_from_config_map=False,
        lifecycle=workload.pre_stop_sleep(PRE_STOP_SECONDS),
        replicas=pooler.replicas,
        priority_class=ctx.priority_class,
    )


def pooler_config(s: PostgresSettings, server: DataEndpoint) -> dict[str, str]:
    pooler = s.pooler
    return {
        "pgbouncer.ini": pgbouncer_ini(
            s.database,
            server.host,
            auth_file=AUTH_FILE,
            pool_mode=pooler.pool_mode,
            default_pool_size=pooler.default_pool_size,
            reserve_pool_size=pooler.reserve_pool_size,
            max_client_conn=pooler.max_client_connections,
            server_port=server.port,
        )
    }


class PgBouncer(pulumi.ComponentResource):
    endpoint: DataEndpoint

    def __init__(self, name: str, args: PgBouncerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:data:PgBouncer", name, None, opts)
        s, ctx, server = args.settings, args.context, args.server
        ns = ctx.namespace
        spec = pooler_workload(s, ctx)
        labels = spec.identity.labels
        config = pooler_config(s, server)
        users = args.password.apply(lambda p: pgbouncer_userlist(s.user, p))
        checksum = pulumi.Output.unsecret(args.password.apply(lambda p: digest({"config": config, "password": p})))
        deployment = workload.deployment_spec(spec, checksum)
        pod = deployment["template"]["spec"]
        workload.mount(pod, "config", CONFIG_PATH, {"config_map": {"name": f"{NAME}-config"}})
        auth = {"secret": {"secret_name": SECRET, "default_mode": 0o440}}
        workload.mount(pod, "auth", AUTH_PATH, auth)
        assert server.pod_selector is not None
        policy = pooler_policy_spec(spec.identity.selector, PORT_NAME, ctx.clients, server.pod_selector, server.port)
        manifests = [
            secret(f"{name}-auth", SECRET, ns, labels, {"userlist.txt": users}),
            config_map(f"{name}-config", f"{NAME}-config", ns, labels, config),
            *workload_kit(name, spec.identity, spec.ports, policy),
            Manifest(
                f"{name}-deployment",
                "Deployment",
                {"metadata": workload.metadata(NAME, ns, labels), "spec": deployment},
                after=(f"{name}-auth", f"{name}-config"),
            ),
        ]
        if workload.needs_disruption_budget(spec):
            manifests.append(
                Manifest(
                    f"{name}-pdb",
                    "PodDisruptionBudget",
                    {
                        "metadata": workload.metadata(NAME, ns, labels),
                        "spec": workload.pdb_spec(spec.identity.selector),
                    },
                )
            )
        register(manifests, self, ctx.tier)
        # The app sees PostgreSQL's endpoint with PgBouncer's address and pods.
        self.endpoint = replace(
            server,
            host=f"{NAME}.{ns}.svc.cluster.local",
            port=PGBOUNCER_PORT,
            pod_selector=spec.identity.selector,
        )
        self.register_outputs({"host": self.endpoint.host, "port": PGBOUNCER_PORT})


def clients_with_pooler(
    clients: Mapping[str, Sequence[Client]], pooled: bool, namespace: str, instance: str
) -> tuple[list[Client], list[Client]]:
    """(PostgreSQL's clients, PgBouncer's clients): with the pooler, the app's go to PgBouncer."""
    declared = list(clients.get("postgres", ()))
    if not pooled:
        return declared, []
    return [pooler_client(namespace, instance)], declared
