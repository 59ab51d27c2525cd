"""Credentials: generated internal secrets and the external ones from secret config.

Internal credentials come from pulumi-random, with `secrets.rotation` as the keeper: bumping it
replaces every generated value. External ones arrive as Pulumi secret Outputs. Either way they
leave this component only as secret Outputs, and reach pods only through Kubernetes Secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_random as random

from components.contracts import DataEndpoint

# Generated credentials: name -> what it protects.
GENERATED = {
    "postgres": "PostgreSQL password of the application user",
    "redis": "Redis password (requirepass)",
    "grafana-admin": "Grafana admin password",
    "secret-key": "session/JWT signing key of the api",
}


@dataclass(frozen=True)
class CredentialsArgs:
    rotation: int
    length: int
    # External secret config values (already secret Outputs), None where unset (dev only).
    llm_api_key: pulumi.Output[str] | None = None
    alert_webhook_url: pulumi.Output[str] | None = None
    registry_password: pulumi.Output[str] | None = None


class Credentials(pulumi.ComponentResource):
    """Every credential of the platform, as secret Outputs."""

    generated: dict[str, pulumi.Output[str]]
    llm_api_key: pulumi.Output[str] | None
    alert_webhook_url: pulumi.Output[str] | None
    registry_password: pulumi.Output[str] | None

    def __init__(self, name: str, args: CredentialsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("support:secrets:Credentials", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.generated = {}
        for credential in GENERATED:
            password = random.RandomPassword(
                f"{name}-{credential}",
                length=args.length,
                # Alphanumeric only: the values go into connection URLs unescaped.
                special=False,
                min_upper=2,
                min_lower=2,
                min_numeric=2,
                keepers={"rotation": str(args.rotation)},
                opts=child,
            )
            self.generated[credential] = pulumi.Output.secret(password.result)
        self.llm_api_key = args.llm_api_key
        self.alert_webhook_url = args.alert_webhook_url
        self.registry_password = args.registry_password
        # Only names go to the engine as outputs: values stay in the resources that own them.
        self.register_outputs({"generated": sorted(GENERATED)})


def database_url(endpoint: DataEndpoint) -> pulumi.Output[str]:
    assert endpoint.credential is not None
    # verify-full: a managed service is reached over TLS with its certificate checked; in-cluster
    # traffic stays inside the NetworkPolicy-guarded path.
    query = "?sslmode=verify-full" if endpoint.tls else ""
    return pulumi.Output.secret(
        pulumi.Output.format(
            "postgresql://{0}:{1}@{2}:{3}/{4}{5}",
            endpoint.user,
            endpoint.credential,
            endpoint.host,
            endpoint.port,
            endpoint.database,
            query,
        )
    )


def redis_url(endpoint: DataEndpoint) -> pulumi.Output[str]:
    assert endpoint.credential is not None
    scheme = "rediss" if endpoint.tls else "redis"
    return pulumi.Output.secret(
        pulumi.Output.format(
            "{0}://:{1}@{2}:{3}/{4}", scheme, endpoint.credential, endpoint.host, endpoint.port, endpoint.database
        )
    )


def credential_values(
    credentials: Credentials, endpoints: Mapping[str, DataEndpoint]
) -> Mapping[str, pulumi.Output[str] | None]:
    """The values a service may reference under `secretEnv`, by credential name. None: an optional
    external secret left unset (dev), the variable is optional. Absent: nothing to give (in-cluster
    Chroma has no auth, a disabled store nothing), the variable is left out."""
    values: dict[str, pulumi.Output[str] | None] = {
        "secretKey": credentials.generated["secret-key"],
        "llmApiKey": credentials.llm_api_key,
    }
    postgres, redis, chroma = (endpoints.get(n) for n in ("postgres", "redis", "chroma"))
    if postgres is not None:
        values["databaseUrl"] = database_url(postgres)
    if redis is not None:
        values["redisUrl"] = redis_url(redis)
    if chroma is not None and chroma.credential is not None:
        values["chromaToken"] = chroma.credential
    return values
