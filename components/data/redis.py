"""Redis: the official image as a hardened StatefulSet with AOF persistence, and its exporter.

The password never appears in a ConfigMap, an argument or an env literal: redis.conf includes
`auth.conf` from a Secret. FLUSHALL, FLUSHDB, CONFIG and DEBUG are renamed away, so a stolen app
credential cannot wipe or reconfigure the server. tests/test_data_tools.py loads the rendered
configuration into a real redis-server and checks both.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import workload
from components.config import RedisSettings
from components.data import conf, store
from components.data.store import StoreContext
from components.network import DataEndpoint, SecretKeyRef

PORT = 6379
EXPORTER_PORT = 9121
SECRET = "redis-credentials"  # noqa: S105 (a Secret's name)
PASSWORD_KEY = "password"  # noqa: S105 (a key name)
AUTH_KEY = "auth.conf"
CONFIG_PATH = "/etc/redis"
AUTH_PATH = "/etc/redis/auth"


@dataclass(frozen=True)
class RedisArgs:
    settings: RedisSettings
    context: StoreContext
    password: pulumi.Output[str]


# REDISCLI_AUTH keeps the password off the command line (and out of `ps`). Ready: an authenticated
# PONG and the dataset loaded. Alive: the server answers, loading or not (a restart mid-load would
# only start the load again).
READY = [
    "/bin/sh",
    "-c",
    'test "$(redis-cli -h 127.0.0.1 -p 6379 ping)" = PONG && '
    "redis-cli -h 127.0.0.1 -p 6379 info persistence | grep -q '^loading:0'",
]
ALIVE = ["/bin/sh", "-c", "redis-cli -h 127.0.0.1 -p 6379 ping | grep -qE '^(PONG|LOADING)'"]


class Redis(pulumi.ComponentResource):
    endpoint: DataEndpoint

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:data:Redis", name, None, opts)
        s, ctx = args.settings, args.context
        ns = ctx.namespace
        child = ctx.options(self)
        svc = store.store_service(
            "cache",
            s.image,
            {"redis": PORT, **({store.METRICS_PORT_NAME: EXPORTER_PORT} if s.exporter.enabled else {})},
            s.resources,
            ["/tmp"],
            # Time for a final AOF fsync of a large dataset.
            60,
        )
        ident = store.identity("redis", ctx, svc)
        host = f"redis.{ns}.svc.cluster.local"
        redis_conf = conf.redis_conf(s.maxmemory, s.maxmemory_policy, auth_include=f"{AUTH_PATH}/{AUTH_KEY}")
        secret = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=workload.metadata(SECRET, ns, ident.labels),
            type="Opaque",
            string_data=store.secret_data(
                {PASSWORD_KEY: args.password, AUTH_KEY: args.password.apply(conf.redis_auth_conf)}
            ),
            opts=child,
        )
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=workload.metadata("redis-config", ns, ident.labels),
            data={"redis.conf": redis_conf},
            opts=child,
        )
        store.register_kit(name, ident, dict(svc.ports), ctx.clients, ctx, s.exporter.enabled, child)
        spec = store.statefulset_spec(
            ident,
            svc,
            pulumi.Output.unsecret(args.password.apply(lambda p: store.digest({"config": redis_conf, "password": p}))),
            [store.claim_template("data", s.storage)],
            ctx,
        )
        pod = spec["template"]["spec"]
        main = pod["containers"][0]
        main["args"] = ["redis-server", f"{CONFIG_PATH}/redis.conf"]
        main["env"] = [store.secret_env("REDISCLI_AUTH", SECRET, PASSWORD_KEY)]
        # Loading a large AOF takes a while after a restart: five minutes before liveness applies.
        main["startup_probe"] = store.exec_probe(READY, period=5, failures=60)
        main["readiness_probe"] = store.exec_probe(READY, period=10, failures=3)
        main["liveness_probe"] = store.exec_probe(ALIVE, period=20, failures=6, timeout=10)
        main.pop("lifecycle", None)
        store.mount(pod, "data", "/data", None)
        store.mount(pod, "config", f"{CONFIG_PATH}/redis.conf", {"config_map": {"name": "redis-config"}}, "redis.conf")
        store.mount(
            pod,
            "auth",
            AUTH_PATH,
            {"secret": {"secret_name": SECRET, "items": [{"key": AUTH_KEY, "path": AUTH_KEY}]}},
        )
        if s.exporter.enabled:
            pod["containers"].append(
                store.sidecar(
                    "exporter",
                    s.exporter.image,
                    EXPORTER_PORT,
                    [
                        {"name": "REDIS_ADDR", "value": f"redis://127.0.0.1:{PORT}"},
                        # CONFIG is renamed away; "-" stops the exporter from calling it on every scrape.
                        {"name": "REDIS_EXPORTER_CONFIG_COMMAND", "value": "-"},
                        store.secret_env("REDIS_PASSWORD", SECRET, PASSWORD_KEY),
                    ],
                    "/metrics",
                    "/health",
                )
            )
        k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=workload.metadata("redis", ns, ident.labels),
            spec=spec,
            opts=ctx.stateful_options(self, secret, config_map),
        )
        self.endpoint = DataEndpoint(
            name="redis",
            host=host,
            port=PORT,
            namespace=ns,
            cidr=None,
            pod_selector=ident.selector,
            credential=pulumi.Output.secret(args.password),
            secret=SecretKeyRef(ns, SECRET, PASSWORD_KEY),
            database=str(s.database),
        )
        self.register_outputs({"host": host, "port": PORT})
