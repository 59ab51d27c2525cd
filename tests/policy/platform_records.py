"""A miniature support platform as the engine would record it, compliant for a given stack.

It mirrors the program's conventions (explicit provider, namespaces with default deny, per-workload
NetworkPolicies, hardened pods, PDB, HPA outside dev, Gateway with HTTPS plus a redirect route,
a protected Postgres StatefulSet in production) so the runner tests can check that a compliant
stack is clean under each stack's config and that single mutations are caught at the right level.
"""

from __future__ import annotations

import copy
from typing import Any

from .fixtures import DIGEST, labels, pod_spec, selector
from .runner import Record

PROJECT = "support-platform"
APP_NS = "support"
DATA_NS = "data"
HOST = "support.example.com"


def urn(stack: str, resource_type: str, name: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{resource_type}::{name}"


def provider_reference(stack: str) -> str:
    return urn(stack, "pulumi:providers:kubernetes", "k8s-provider") + "::04da6b54-provider-id"


def meta(name: str, namespace: str | None, component: str = "backend") -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "labels": labels(name, component)}
    if namespace is not None:
        result["namespace"] = namespace
    return result


def platform(stack: str) -> list[Record]:
    replicated = stack != "dev"
    records: list[Record] = []

    def add(resource_type: str, name: str, inputs: dict[str, Any], protect: bool = False) -> None:
        api_version = resource_type.split(":")[1].removeprefix("core/")
        body = {"apiVersion": api_version, "kind": resource_type.split(":")[2], **inputs}
        records.append(
            Record(
                type=resource_type,
                name=name,
                urn=urn(stack, resource_type, name),
                inputs=body,
                protect=protect,
                provider=provider_reference(stack),
            )
        )

    records.append(
        Record(
            "pulumi:providers:kubernetes", "k8s-provider", urn(stack, "pulumi:providers:kubernetes", "k8s-provider"), {}
        )
    )

    for ns in (APP_NS, DATA_NS):
        ns_meta = meta(ns, None, "namespace")
        if ns == DATA_NS:
            ns_meta["labels"]["support-platform.io/data"] = "true"
        add(
            "kubernetes:core/v1:Namespace",
            f"{ns}-ns",
            {"metadata": ns_meta},
            protect=ns == DATA_NS and stack == "production",
        )
        add(
            "kubernetes:networking.k8s.io/v1:NetworkPolicy",
            f"{ns}-default-deny",
            {
                "metadata": meta("default-deny", ns, "network"),
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
            },
        )
        add(
            "kubernetes:networking.k8s.io/v1:NetworkPolicy",
            f"{ns}-dns",
            {
                "metadata": meta("allow-dns", ns, "network"),
                "spec": {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}],
                },
            },
        )

    # The API: Deployment, its ServiceAccount, ConfigMap, Service, NetworkPolicy, PDB, HPA.
    api_spec = pod_spec("Deployment", "api")
    api_spec["containers"][0]["image"] = f"registry.example.com/support/api:1.4.2@{DIGEST}"
    api_spec["containers"][0]["env"] = [
        {"name": "DATABASE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "postgres", "key": "password"}}},
        {"name": "DATABASE_URL", "value": f"postgresql://postgres.{DATA_NS}:5432/support"},
    ]
    api_spec["containers"][0]["envFrom"] = [{"configMapRef": {"name": "api"}}]
    deployment: dict[str, Any] = {
        "metadata": meta("api", APP_NS),
        "spec": {
            "selector": {"matchLabels": selector("api")},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels("api")}, "spec": api_spec},
        },
    }
    if not replicated:
        deployment["spec"]["replicas"] = 1
    add("kubernetes:apps/v1:Deployment", "api", deployment)
    add(
        "kubernetes:core/v1:ServiceAccount",
        "api-sa",
        {"metadata": meta("api", APP_NS), "automountServiceAccountToken": False},
    )
    add(
        "kubernetes:core/v1:ConfigMap",
        "api-config",
        {"metadata": meta("api", APP_NS), "data": {"LOG_LEVEL": "info", "DB_PASSWORD_FILE": "/run/secrets/db"}},
    )
    add(
        "kubernetes:core/v1:Service",
        "api-svc",
        {
            "metadata": meta("api", APP_NS),
            "spec": {
                "type": "ClusterIP",
                "selector": selector("api"),
                "ports": [{"name": "http", "port": 8000, "targetPort": "http"}],
            },
        },
    )
    add(
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        "api-netpol",
        {
            "metadata": meta("api", APP_NS, "network"),
            "spec": {
                "podSelector": {"matchLabels": selector("api")},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}}]}
                ],
                "egress": [
                    {
                        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": DATA_NS}}}],
                        "ports": [{"port": 5432}],
                    }
                ],
            },
        },
    )
    add(
        "kubernetes:policy/v1:PodDisruptionBudget",
        "api-pdb",
        {"metadata": meta("api", APP_NS), "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector("api")}}},
    )
    if replicated:
        add(
            "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
            "api-hpa",
            {
                "metadata": meta("api", APP_NS),
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
                    "minReplicas": 2 if stack == "staging" else 3,
                    "maxReplicas": 4 if stack == "staging" else 10,
                },
            },
        )

    # Postgres: a StatefulSet in the data namespace, protected in production.
    pg_spec = pod_spec("StatefulSet", "postgres")
    pg_spec["containers"][0]["image"] = f"registry.example.com/postgres:16.4@{DIGEST}"
    pg_spec["containers"][0]["env"] = [
        {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "postgres", "key": "password"}}}
    ]
    pg_spec["containers"][0]["livenessProbe"] = {"tcpSocket": {"port": 5432}}
    pg_spec["containers"][0]["readinessProbe"] = {"exec": {"command": ["pg_isready", "-U", "support"]}}
    add(
        "kubernetes:apps/v1:StatefulSet",
        "postgres",
        {
            "metadata": meta("postgres", DATA_NS, "database"),
            "spec": {
                "replicas": 1,
                "serviceName": "postgres",
                "selector": {"matchLabels": selector("postgres")},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "template": {"metadata": {"labels": labels("postgres", "database")}, "spec": pg_spec},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}],
            },
        },
        protect=stack == "production",
    )
    add(
        "kubernetes:core/v1:ServiceAccount",
        "postgres-sa",
        {"metadata": meta("postgres", DATA_NS, "database"), "automountServiceAccountToken": False},
    )
    add(
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        "postgres-netpol",
        {
            "metadata": meta("postgres", DATA_NS, "network"),
            "spec": {
                "podSelector": {"matchLabels": selector("postgres")},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": selector("api")}, "namespaceSelector": {}}]}],
                "egress": [],
            },
        },
    )

    # The edge: a Gateway with HTTP and HTTPS listeners, the app route and the redirect route.
    listeners = [
        {"name": "http", "protocol": "HTTP", "port": 80, "hostname": HOST},
        {
            "name": "https",
            "protocol": "HTTPS",
            "port": 443,
            "hostname": HOST,
            "tls": {"certificateRefs": [{"name": "edge-tls"}]},
        },
    ]
    add(
        "kubernetes:gateway.networking.k8s.io/v1:Gateway",
        "edge-gateway",
        {"metadata": meta("edge", APP_NS, "edge"), "spec": {"gatewayClassName": "nginx", "listeners": listeners}},
    )
    add(
        "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
        "web-route",
        {
            "metadata": meta("web", APP_NS, "edge"),
            "spec": {
                "parentRefs": [{"name": "edge", "sectionName": "https"}],
                "hostnames": [HOST],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                        "backendRefs": [{"name": "api", "port": 8000}],
                    }
                ],
            },
        },
    )
    add(
        "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
        "web-redirect",
        {
            "metadata": meta("web-redirect", APP_NS, "edge"),
            "spec": {
                "parentRefs": [{"name": "edge", "sectionName": "http"}],
                "hostnames": [HOST],
                "rules": [
                    {
                        "filters": [
                            {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
                        ]
                    }
                ],
            },
        },
    )
    return records


def find(records: list[Record], name: str) -> Record:
    return next(r for r in records if r.name == name)


def mutable(records: list[Record]) -> list[Record]:
    return copy.deepcopy(records)
