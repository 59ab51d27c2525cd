"""Bad configurations stop the program before any resource is registered, naming path and fix."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from tests.harness import TEST_SECRETS, overlay, raw_stack_value, run_program, stack_config


def app_with(stack: str, patch: dict[str, Any]) -> dict[str, Any]:
    return overlay(raw_stack_value(stack, "app"), patch)


def edge_with(stack: str, patch: dict[str, Any]) -> dict[str, Any]:
    return overlay(raw_stack_value(stack, "edge"), patch)


def services(stack: str, **patches: dict[str, Any]) -> dict[str, Any]:
    return {"app": app_with(stack, {"services": patches})}


PROD_DIGEST = "ghcr.io/support-platform/api@sha256:" + "a" * 64

# (id, stack, config overrides, removed keys, extra plaintext keys, expected path, expected text)
BAD_CONFIGS: list[tuple[str, str, dict[str, Any], tuple[str, ...], dict[str, str], str, str]] = [
    (
        "wrong-type-replicas",
        "dev",
        services("dev", api={"replicas": "three"}),
        (),
        {},
        "support-platform:app.services.api.replicas",
        "valid integer",
    ),
    (
        "negative-replicas",
        "dev",
        services("dev", web={"replicas": -1}),
        (),
        {},
        "support-platform:app.services.web.replicas",
        "greater than or equal to 1",
    ),
    (
        "unknown-service-key",
        "dev",
        services("dev", api={"replica": 2}),
        (),
        {},
        "support-platform:app.services.api.replica",
        "unknown key; allowed keys here: args, autoscaling",
    ),
    (
        "unknown-top-level-key",
        "dev",
        {"aplication": {"services": {}}},
        (),
        {},
        "support-platform:aplication",
        "unknown key; allowed top-level keys",
    ),
    (
        "autoscaling-min-above-max",
        "staging",
        {"app": app_with("staging", {"defaults": {"autoscaling": {"minReplicas": 5, "maxReplicas": 3}}})},
        (),
        {},
        "support-platform:app.defaults.autoscaling.minReplicas",
        "minReplicas (5) must be <= maxReplicas (3)",
    ),
    (
        "missing-production-secret",
        "production",
        {},
        ("llmApiKey",),
        {},
        "support-platform:llmApiKey",
        "required in production: run `pulumi config set --secret llmApiKey`",
    ),
    (
        "secret-set-in-plaintext",
        "staging",
        {},
        ("alertWebhookUrl",),
        {"alertWebhookUrl": TEST_SECRETS["alertWebhookUrl"]},
        "support-platform:alertWebhookUrl",
        "is set in plaintext",
    ),
    (
        "tag-instead-of-digest-in-production",
        "production",
        services("production", api={"image": "ghcr.io/support-platform/api:1.4.0"}),
        (),
        {},
        "support-platform:app.services.api.image",
        "production requires an image pinned by digest",
    ),
    (
        "latest-tag",
        "dev",
        services("dev", web={"image": "docker.io/nginxinc/nginx-unprivileged:latest"}),
        (),
        {},
        "support-platform:app.services.web.image",
        "mutable tag 'latest'",
    ),
    (
        "duplicate-ports",
        "dev",
        services("dev", api={"ports": {"http": 8000, "metrics": 8000}}),
        (),
        {},
        "support-platform:app.services.api.ports",
        "port numbers must be unique",
    ),
    (
        "invalid-service-name",
        "dev",
        services(
            "dev",
            Support_Bot={"component": "worker", "image": "ghcr.io/acme/bot:1.0", "ports": {"http": 80}},
        ),
        (),
        {},
        "support-platform:app.services.Support_Bot",
        "not a valid DNS label",
    ),
    (
        "invalid-namespace-name",
        "dev",
        {"namespaces": {"app": "Support.App"}},
        (),
        {},
        "support-platform:namespaces.app",
        "not a valid DNS label",
    ),
    (
        "system-namespace",
        "dev",
        {"namespaces": {"app": "default"}},
        (),
        {},
        "support-platform:namespaces.app",
        "shared system namespace",
    ),
    (
        "memory-limit-removed",
        "dev",
        services("dev", api={"resources": {"limits": {"memory": None}}}),
        (),
        {},
        "support-platform:app.services.api.resources.limits.memory",
        "required key is missing",
    ),
    (
        "requests-above-limits",
        "dev",
        services("dev", api={"resources": {"requests": {"memory": "2Gi"}}}),
        (),
        {},
        "support-platform:app.services.api.resources.requests.memory",
        "request 2Gi exceeds limit 512Mi",
    ),
    (
        "secret-in-plain-env",
        "dev",
        services("dev", api={"env": {"OPENAI_API_KEY": "sk-live-123"}}),
        (),
        {},
        "support-platform:app.services.api.env",
        "env.OPENAI_API_KEY looks like a secret",
    ),
    (
        "credentials-in-env-url",
        "dev",
        services("dev", api={"env": {"UPSTREAM": "https://bot:hunter2@upstream.example.com"}}),
        (),
        {},
        "support-platform:app.services.api.env",
        "looks like a secret",
    ),
    (
        "production-without-tls-hosts",
        "production",
        {"edge": {"hosts": []}},
        (),
        {},
        "support-platform:edge.hosts",
        "production needs at least one public host",
    ),
    (
        "render-mode-outside-dev",
        "staging",
        {"target": {"mode": "render", "renderDirectory": "rendered/staging"}},
        (),
        {},
        "support-platform:target.mode",
        "only dev may render",
    ),
    (
        "cluster-mode-without-context",
        "staging",
        {"target": {"mode": "cluster"}},
        (),
        {},
        "support-platform:target.context",
        "mode 'cluster' needs the kubeconfig context",
    ),
    (
        "unknown-connection",
        "dev",
        services("dev", web={"connectsTo": ["api", "billing"]}),
        (),
        {},
        "support-platform:app.services.web.connectsTo",
        "unknown connection 'billing'",
    ),
    (
        "credential-without-connection",
        "dev",
        services("dev", web={"secretEnv": {"DATABASE_URL": "databaseUrl"}}),
        (),
        {},
        "support-platform:app.services.web.secretEnv.DATABASE_URL",
        "add 'postgres' to connectsTo",
    ),
    (
        "liveness-same-as-readiness",
        "dev",
        services("dev", api={"probes": {"liveness": {"path": "/health/readiness"}}}),
        (),
        {},
        "support-platform:app.services.api.probes.liveness.path",
        "liveness must not check the same endpoint as readiness",
    ),
    (
        "uid-below-10000",
        "dev",
        services("dev", web={"runAsUser": 101}),
        (),
        {},
        "support-platform:app.services.web.runAsUser",
        "greater than or equal to 10000",
    ),
    (
        "grace-shorter-than-streams",
        "dev",
        services("dev", api={"terminationGracePeriodSeconds": 30}),
        (),
        {},
        "support-platform:app.services.api.terminationGracePeriodSeconds",
        "does not outlast preStop",
    ),
    (
        "wildcard-host",
        "staging",
        {"edge": {"hosts": ["*.example.com"], "tls": {"issuer": "letsencrypt-staging"}}},
        (),
        {},
        "support-platform:edge.hosts.0",
        "wildcard host '*.example.com' is not allowed",
    ),
    (
        "host-not-a-dns-name",
        "staging",
        {"edge": edge_with("staging", {"hosts": ["support_staging.example.com"]})},
        (),
        {},
        "support-platform:edge.hosts.0",
        "is not a host name",
    ),
    (
        "production-without-issuer-or-secret",
        "production",
        {"edge": edge_with("production", {"tls": {"issuer": None}})},
        (),
        {},
        "support-platform:edge.tls",
        "every host must be served with TLS",
    ),
    (
        "issuer-and-secret-both",
        "staging",
        {"edge": edge_with("staging", {"tls": {"secretName": "support-tls"}})},
        (),
        {},
        "support-platform:edge.tls.secretName",
        "set either issuer",
    ),
    (
        "acme-issuer-without-email",
        "staging",
        {"edge": edge_with("staging", {"tls": {"acmeEmail": None}})},
        (),
        {},
        "support-platform:edge.tls.acmeEmail",
        "needs the account e-mail",
    ),
    (
        "timeout-out-of-range",
        "staging",
        {"edge": edge_with("staging", {"timeouts": {"requestSeconds": 7200}})},
        (),
        {},
        "support-platform:edge.timeouts.requestSeconds",
        "less than or equal to 3600",
    ),
    (
        "backend-timeout-cuts-streams",
        "staging",
        {"edge": edge_with("staging", {"timeouts": {"backendRequestSeconds": 60}})},
        (),
        {},
        "support-platform:edge.timeouts.backendRequestSeconds",
        "would cut streamed replies",
    ),
    (
        "backend-timeout-above-request",
        "staging",
        {"edge": edge_with("staging", {"timeouts": {"requestSeconds": 200, "backendRequestSeconds": 300}})},
        (),
        {},
        "support-platform:edge.timeouts.backendRequestSeconds",
        "must fit in the request",
    ),
    (
        "unknown-edge-mode",
        "staging",
        {"edge": edge_with("staging", {"mode": "loadbalancer"})},
        (),
        {},
        "support-platform:edge.mode",
        "'gateway' or 'ingress'",
    ),
    (
        "route-to-a-worker",
        "staging",
        {
            "edge": edge_with("staging", {"routes": {"/tools": "mcp"}}),
            **services("staging", mcp={"enabled": True, "image": "ghcr.io/support-platform/mcp:1.0.0"}),
        },
        (),
        {},
        "support-platform:edge.routes./tools",
        "'mcp' is not an exposed service",
    ),
    (
        "exposed-service-without-route",
        "staging",
        {"edge": edge_with("staging", {"routes": {"/api": "api"}})},
        (),
        {},
        "support-platform:edge.routes",
        "exposed service(s) web have no route",
    ),
]


BAD_CONFIGS += [
    (
        "monitoring-threshold-out-of-range",
        "staging",
        {"monitoring": {"thresholds": {"errorRatePercent": 150}}},
        (),
        {},
        "support-platform:monitoring.thresholds.errorRatePercent",
        "less than 100",
    ),
    (
        "monitoring-slo-target-100",
        "production",
        {"monitoring": {"slo": {"availability": 100}}},
        (),
        {},
        "support-platform:monitoring.slo.availability",
        "below 100 %",
    ),
    (
        "monitoring-receiver-without-url",
        "dev",
        {"monitoring": {"receivers": {"critical": {}}}},
        (),
        {},
        "support-platform:monitoring.receivers.critical.webhook",
        "a receiver needs at least one of webhook, slack or email",
    ),
    (
        "monitoring-webhook-without-url",
        "dev",
        {"monitoring": {"receivers": {"critical": {"webhook": {}}}}},
        (),
        {},
        "support-platform:monitoring.receivers.critical.webhook.url",
        "a webhook needs exactly one of url, or urlSecret",
    ),
    (
        "monitoring-receiver-url-with-credentials",
        "staging",
        {"monitoring": {"receivers": {"warning": {"webhook": {"url": "https://bot:hunter2@hooks.example.com/x"}}}}},
        (),
        {},
        "support-platform:monitoring.receivers.warning.webhook.url",
        "use urlSecret",
    ),
    (
        # The api's pools at production's full scale: 11 pods x 30 against 197 allowed connections.
        "production-connections-without-the-pooler",
        "production",
        {"data": {"postgres": {"pooler": {"enabled": False}}}},
        (),
        {},
        "support-platform:data.postgres.parameters.max_connections",
        "the platform can open 336 connections to PostgreSQL at full scale, max_connections 200 - "
        "superuser_reserved_connections 3 = 197 allowed: api: 11 pods (app.services.api.autoscaling.maxReplicas 10 "
        "+ 1 surge) x 1 process(es) (app.services.api.databasePool.processes) x 30 "
        "(app.services.api.databasePool.size 10 + maxOverflow 20) = 330",
    ),
    (
        "worker-processes-count",
        "staging",
        services("staging", api={"databasePool": {"processes": 4}}),
        (),
        {},
        "support-platform:data.postgres.parameters.max_connections",
        "or put PgBouncer in front: data.postgres.pooler.enabled: true",
    ),
    (
        "pooler-clients-beyond-one-pod",
        "production",
        services("production", api={"autoscaling": {"maxReplicas": 40}}),
        (),
        {},
        "support-platform:data.postgres.pooler.maxClientConnections",
        "the app can open 1231 connections to PgBouncer at full scale, more than the 1000 one PgBouncer pod accepts",
    ),
    (
        "pooler-server-connections-beyond-max-connections",
        "production",
        {"data": {"postgres": {"pooler": {"defaultPoolSize": 100}}}},
        (),
        {},
        "support-platform:data.postgres.parameters.max_connections",
        "PgBouncer and the data tier can open 320 connections at full scale, max_connections 200 - "
        "superuser_reserved_connections 3 = 197 allowed: pgbouncer: 3 pods (data.postgres.pooler.replicas 2 + 1 "
        "surge) x 105 (defaultPoolSize 100 + reservePoolSize 5) = 315",
    ),
    (
        "service-on-postgres-without-a-pool",
        "dev",
        services("dev", mcp={"enabled": True, "image": "ghcr.io/support-platform/mcp:1.0.0", "databasePool": None}),
        (),
        {},
        "support-platform:app.services.mcp.databasePool",
        "'mcp' connects to postgres without a declared pool",
    ),
    (
        "pool-env-set-twice",
        "dev",
        services("dev", api={"env": {"DB_POOL_SIZE": "50"}}),
        (),
        {},
        "support-platform:app.services.api.env",
        "DB_POOL_SIZE come from databasePool",
    ),
    (
        "pooler-in-front-of-a-managed-database",
        "dev",
        {
            "data": {
                "postgres": {
                    "mode": "external",
                    "external": {"host": "db.example.com", "port": 5432, "cidr": "10.0.0.0/24"},
                    "pooler": {"enabled": True},
                }
            }
        },
        (),
        {"postgresPassword": "x"},
        "support-platform:data.postgres.pooler.enabled",
        "the pooler fronts the in-cluster PostgreSQL",
    ),
    (
        # 000's SLA is p95 < 2 s; the Python client's default buckets jump from 1.0 to 2.5.
        "slo-latency-between-buckets",
        "dev",
        {"monitoring": {"slo": {"latencySeconds": 2}}},
        (),
        {},
        "support-platform:monitoring.slo.latencySeconds",
        "2.0 is not a bucket of chat_message_duration_seconds (monitoring.histograms.chatMessageDurationSeconds: "
        "0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)",
    ),
    (
        "alert-threshold-between-buckets",
        "dev",
        {
            "monitoring": {
                "thresholds": {"responseTimeP95Seconds": 3},
                "slo": {"latencySeconds": 2},
                "histograms": {"chatMessageDurationSeconds": [1, 2, 5]},
            }
        },
        (),
        {},
        "support-platform:monitoring.thresholds.responseTimeP95Seconds",
        "add 3.0 to monitoring.histograms.chatMessageDurationSeconds",
    ),
    (
        "buckets-not-ascending",
        "dev",
        {"monitoring": {"histograms": {"chatMessageDurationSeconds": [0.5, 0.25, 5]}}},
        (),
        {},
        "support-platform:monitoring.histograms.chatMessageDurationSeconds",
        "strictly ascending",
    ),
    (
        "email-without-smtp",
        "dev",
        {"monitoring": {"receivers": {"critical": {"email": {"to": ["oncall@example.com"]}}}}},
        (),
        {},
        "support-platform:monitoring.receivers.critical.email",
        "set monitoring.smtp",
    ),
    (
        "slack-without-its-secret",
        "staging",
        {"monitoring": {"receivers": {"critical": {"slack": {"channel": "#alerts"}}}}},
        (),
        {},
        "support-platform:slackWebhookUrl",
        "required in staging by monitoring.receivers.critical.slack",
    ),
    (
        "smtp-login-without-its-password",
        "production",
        {
            "monitoring": {
                "smtp": {"smarthost": "smtp.example.com:587", "from": "alerts@example.com", "authUsername": "alerts"},
                "receivers": {"warning": {"email": {"to": ["team@example.com"]}}},
            }
        },
        (),
        {},
        "support-platform:smtpPassword",
        "required in production by monitoring.smtp.authUsername",
    ),
    (
        "monitoring-operator-without-selector",
        "production",
        {"monitoring": {"mode": "operator"}},
        (),
        {},
        "support-platform:monitoring.operator.selectorLabels",
        "operator mode needs the labels",
    ),
    (
        "monitoring-bad-retention",
        "dev",
        {"monitoring": {"retention": {"time": "two weeks"}}},
        (),
        {},
        "support-platform:monitoring.retention.time",
        "not a valid Prometheus duration",
    ),
    (
        "monitoring-malformed-kube-state-metrics-image",
        "staging",
        # A truncated digest: neither a tag nor a digest the registry could resolve.
        {
            "monitoring": {
                "images": {"kubeStateMetrics": "registry.k8s.io/kube-state-metrics/kube-state-metrics@sha256:42cfe"}
            }
        },
        (),
        {},
        "support-platform:monitoring.images.kubeStateMetrics",
        "is not a pinned image reference",
    ),
    (
        "monitoring-kube-state-metrics-tag-in-production",
        "production",
        {
            "monitoring": {
                "images": {"kubeStateMetrics": "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0"}
            }
        },
        (),
        {},
        "support-platform:monitoring.images.kubeStateMetrics",
        "production requires an image pinned by digest",
    ),
    (
        "monitoring-kubelet-volume-stats-in-operator-mode",
        "staging",
        {
            "monitoring": {
                "mode": "operator",
                "operator": {"selectorLabels": {"release": "kps"}},
                "kubeletVolumeStats": True,
            }
        },
        (),
        {},
        "support-platform:monitoring.kubeletVolumeStats",
        "only bundled mode scrapes kubelets",
    ),
]


@pytest.mark.parametrize(
    ("stack", "overrides", "remove", "plaintext", "path", "text"),
    [case[1:] for case in BAD_CONFIGS],
    ids=[case[0] for case in BAD_CONFIGS],
)
def test_bad_config_is_reported_and_registers_nothing(
    stack: str,
    overrides: dict[str, Any],
    remove: tuple[str, ...],
    plaintext: dict[str, str],
    path: str,
    text: str,
) -> None:
    config, secret_keys = stack_config(stack, overrides=overrides, remove=remove, plaintext=plaintext)
    run = run_program(stack, config, secret_keys)
    assert isinstance(run.error, pulumi.RunError), run.error
    message = str(run.error)
    line = next((ln for ln in message.splitlines() if ln.strip().startswith(f"- {path}:")), None)
    assert line is not None, f"no line for {path} in:\n{message}"
    assert text in line, line
    assert f"Pulumi.{stack}.yaml" in message
    assert run.resources == [], [r.name for r in run.resources]


def test_every_problem_is_reported_at_once() -> None:
    overrides = services(
        "production",
        api={"replicas": 0, "image": "ghcr.io/support-platform/api:1.4.0"},
        web={"ports": {"http": 8080, "admin": 8080}},
    )
    config, secret_keys = stack_config("production", overrides=overrides, remove=("llmApiKey", "alertWebhookUrl"))
    run = run_program("production", config, secret_keys)
    assert isinstance(run.error, pulumi.RunError)
    problems = [ln for ln in str(run.error).splitlines() if ln.startswith("  - ")]
    paths = {ln[4:].split(": ", 1)[0] for ln in problems}
    assert paths == {
        "support-platform:app.services.api.replicas",
        "support-platform:app.services.api.image",
        "support-platform:app.services.web.ports",
        "support-platform:llmApiKey",
        "support-platform:alertWebhookUrl",
    }
    assert f"has {len(problems)} configuration problem(s)" in str(run.error)
    assert run.resources == []


def test_inherited_default_problem_is_reported_once_where_written() -> None:
    overrides = {"app": app_with("staging", {"defaults": {"autoscaling": {"minReplicas": 9, "maxReplicas": 3}}})}
    config, secret_keys = stack_config("staging", overrides=overrides)
    run = run_program("staging", config, secret_keys)
    lines = [ln for ln in str(run.error).splitlines() if "minReplicas (9)" in ln]
    assert len(lines) == 1 and "app.defaults.autoscaling" in lines[0]
