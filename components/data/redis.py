"""Redis: the official image as a hardened StatefulSet with AOF persistence, and its exporter.

The password never appears in a ConfigMap, an argument or an env literal: redis.conf includes
`auth.conf` from a Secret. FLUSHALL, FLUSHDB, CONFIG and DEBUG are renamed away, so a stolen app
credential cannot wipe or reconfigure the server. tests/test_data_tools.py loads the rendered
configuration into a real redis-server and checks both.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.config import RedisSettings
from components.contracts import DataEndpoint, SecretKeyRef
from components.data.server_config import redis_auth_conf, redis_conf
from components.data.store_workload import (
    StoreContext,
    sidecar,
    store_kit,
    store_statefulset_spec,
    store_workload,
)
from components.kit import workload
from components.kit.objects import Manifest, config_map, digest, register, secret
from components.kit.workload import METRICS_PORT_NAME, exec_probe, mount, secret_env

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
        host = f"redis.{ns}.svc.cluster.local"
        sidecars = []
        if s.exporter.enabled:
            exporter_env = [
                {"name": "REDIS_ADDR", "value": f"redis://127.0.0.1:{PORT}"},
                # CONFIG is renamed away; "-" stops the exporter from calling it on every scrape.
                {"name": "REDIS_EXPORTER_CONFIG_COMMAND", "value": "-"},
                secret_env("REDIS_PASSWORD", SECRET, PASSWORD_KEY),
            ]
            sidecars.append(sidecar("exporter", s.exporter.image, EXPORTER_PORT, exporter_env, "/metrics", "/health"))
        spec = store_workload(
            "redis",
            ctx,
            "cache",
            s.image,
            {"redis": PORT, **({METRICS_PORT_NAME: EXPORTER_PORT} if s.exporter.enabled else {})},
            s.resources,
            {
                # Loading a large AOF takes a while after a restart: five minutes before liveness applies.
                "startup": exec_probe(READY, period=5, failures=60),
                "readiness": exec_probe(READY, period=10, failures=3),
                "liveness": exec_probe(ALIVE, period=20, failures=6, timeout=10),
            },
            writable_paths=["/tmp"],
            # Time for a final AOF fsync of a large dataset.
            grace_seconds=60,
            args=["redis-server", f"{CONFIG_PATH}/redis.conf"],
            env=[secret_env("REDISCLI_AUTH", SECRET, PASSWORD_KEY)],
            sidecars=sidecars,
        )
        labels = spec.identity.labels
        config = redis_conf(s.maxmemory, s.maxmemory_policy, auth_include=f"{AUTH_PATH}/{AUTH_KEY}")
        statefulset = store_statefulset_spec(
            spec,
            pulumi.Output.unsecret(args.password.apply(lambda p: digest({"config": config, "password": p}))),
            s.storage,
            ctx,
        )
        pod = statefulset["template"]["spec"]
        mount(pod, "data", "/data", None)
        mount(pod, "config", f"{CONFIG_PATH}/redis.conf", {"config_map": {"name": "redis-config"}}, "redis.conf")
        auth = {"secret": {"secret_name": SECRET, "items": [{"key": AUTH_KEY, "path": AUTH_KEY}]}}
        mount(pod, "auth", AUTH_PATH, auth)
        register(
            [
                secret(
                    f"{name}-credentials",
                    SECRET,
                    ns,
                    labels,
                    {PASSWORD_KEY: args.password, AUTH_KEY: args.password.apply(redis_auth_conf)},
                ),
                config_map(f"{name}-config", "redis-config", ns, labels, {"redis.conf": config}),
                *store_kit(name, spec, ctx.clients, ctx),
                Manifest(
                    f"{name}-statefulset",
                    "StatefulSet",
                    {"metadata": workload.metadata("redis", ns, labels), "spec": statefulset},
                    stateful=True,
                    after=(f"{name}-credentials", f"{name}-config"),
                ),
            ],
            self,
            ctx.tier,
        )
        self.endpoint = DataEndpoint(
            name="redis",
            host=host,
            port=PORT,
            namespace=ns,
            cidr=None,
            pod_selector=spec.identity.selector,
            credential=pulumi.Output.secret(args.password),
            secret=SecretKeyRef(ns, SECRET, PASSWORD_KEY),
            database=str(s.database),
        )
        self.register_outputs({"host": host, "port": PORT})
