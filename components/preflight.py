"""Preflight: what the target cluster must already have for this stack, checked before anything is registered.

A bare cluster otherwise gets half a platform: the namespaces, Secrets and workloads are created, then
the Gateway, routes and certificates fail one by one ("no matches for kind ..."). So, in cluster mode
and at preview too, the program first asks the cluster for each prerequisite the settings imply:

- the CRDs of the custom resources the stack emits, serving the version it emits (Gateway API,
  Envoy Gateway's BackendTrafficPolicy, cert-manager, the Prometheus Operator's in operator mode, the
  CSI snapshot CRDs when Chroma's snapshots are on);
- the objects it names but does not create (GatewayClass, IngressClass, ClusterIssuer, StorageClass,
  VolumeSnapshotClass), and a default StorageClass when a claim names none;
- a server version it supports.

`needs` decides from the validated settings alone (pure; unit-tested); `missing` asks a cluster reader
(components/cluster_reader.py). Every missing prerequisite is listed with how to install it, and the
program stops before registering anything. When no cluster answers (an offline preview, a CI job
without credentials) it says so and checks nothing; a prerequisite it may not read (403) is a note.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from components.cluster_reader import ClusterUnreachableError, kubeconfig_paths, reader_for
from components.config import Settings

# Oldest API server the program is written for: CronJob spec.timeZone is GA in 1.27, and production's
# StatefulSet claim retention (persistentVolumeClaimRetentionPolicy) is on by default from 1.27.
MIN_SERVER_VERSION = (1, 27)
CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
ALL_CRDS = (
    '`kubectl apply --server-side -f "$(scripts/crds.sh)"` installs every CRD this program emits at the versions it '
    "is tested with (CRDs only: the controllers that act on them are the cluster's own)"
)

# Where each CRD comes from: the projects and versions scripts/crds.sh pins.
SOURCES = {
    "gateway.networking.k8s.io": "the Gateway API standard CRDs (sigs.k8s.io/gateway-api v1.6.3; Envoy Gateway's "
    "chart installs them)",
    "gateway.envoyproxy.io": "Envoy Gateway (github.com/envoyproxy/gateway v1.9.1)",
    "cert-manager.io": "cert-manager (github.com/cert-manager/cert-manager v1.21.2)",
    "monitoring.coreos.com": "the Prometheus Operator (github.com/prometheus-operator/prometheus-operator v0.85.0, "
    "e.g. through kube-prometheus-stack)",
    "snapshot.storage.k8s.io": "the CSI snapshot CRDs and snapshot controller "
    "(github.com/kubernetes-csi/external-snapshotter, client/v8 v8.7.0)",
}


@dataclass(frozen=True)
class Need:
    """One prerequisite: what, why the settings need it, how to provide it, and how to ask the API."""

    kind: Literal["crd", "object", "default-storage-class"]
    what: str
    why: str
    fix: str
    path: str = ""  # API path to GET
    version: str = ""  # crd: the version that must be served
    optional: bool = False  # a note rather than a refusal when absent


def crd(plural: str, group: str, version: str, kind: str, why: str, alternative: str) -> Need:
    name = f"{plural}.{group}"
    return Need(
        "crd",
        f"CRD {name} ({kind}, {group}/{version})",
        why,
        f"install {SOURCES[group]}{alternative}",
        f"{CRD_API}/{name}",
        version,
    )


def needs(settings: Settings) -> list[Need]:
    """Every prerequisite the settings imply, in the order an operator would install them."""
    found: list[Need] = []
    edge = settings.edge
    if edge.enabled and edge.mode == "gateway":
        why = "edge.mode gateway: the Gateway and its HTTPRoutes"
        for plural, kind in (("gateways", "Gateway"), ("httproutes", "HTTPRoute"), ("gatewayclasses", "GatewayClass")):
            found.append(crd(plural, "gateway.networking.k8s.io", "v1", kind, why, ", or set edge.mode: ingress"))
        name = edge.gateway.class_name
        found.append(
            Need(
                "object",
                f"GatewayClass {name}",
                "edge.gateway.className: the Gateway's class",
                f"install the Gateway API implementation that provides class '{name}' (Envoy Gateway's is 'eg'), or "
                "set edge.gateway.className to a class `kubectl get gatewayclass` lists",
                f"/apis/gateway.networking.k8s.io/v1/gatewayclasses/{name}",
            )
        )
        if edge.rate_limit.enabled:
            why = "edge.rateLimit.enabled: the per-client limits of the routes"
            alt = ", or set edge.rateLimit.enabled: false"
            kind = "BackendTrafficPolicy"
            found.append(crd("backendtrafficpolicies", "gateway.envoyproxy.io", "v1alpha1", kind, why, alt))
    if edge.enabled and edge.mode == "ingress":
        name = edge.ingress.class_name
        found.append(
            Need(
                "object",
                f"IngressClass {name}",
                "edge.mode ingress: the Ingress's class",
                f"install the ingress controller whose IngressClass is '{name}' (ingress-nginx), or set "
                "edge.ingress.className to a class `kubectl get ingressclass` lists",
                f"/apis/networking.k8s.io/v1/ingressclasses/{name}",
            )
        )
    tls = edge.tls
    if edge.enabled and tls.issuer is not None:
        why = f"edge.tls.issuer {tls.issuer}: cert-manager signs the hosts' certificate"
        alt = ", or serve an existing TLS Secret with edge.tls.secretName"
        found.append(crd("certificates", "cert-manager.io", "v1", "Certificate", why, alt))
        plural = "clusterissuers" if tls.issuer_kind == "ClusterIssuer" else "issuers"
        found.append(crd(plural, "cert-manager.io", "v1", tls.issuer_kind, why, alt))
        if tls.create_issuer == "none":
            scope = "" if tls.issuer_kind == "ClusterIssuer" else f"namespaces/{settings.namespaces.app}/"
            found.append(
                Need(
                    "object",
                    f"{tls.issuer_kind} {tls.issuer}",
                    "edge.tls.issuer names an issuer the program does not create",
                    f"create the {tls.issuer_kind} '{tls.issuer}' with cert-manager, or let the program create one: "
                    "edge.tls.createIssuer acmeProduction, acmeStaging or selfSigned",
                    f"/apis/cert-manager.io/v1/{scope}{plural}/{tls.issuer}",
                    # A namespaced Issuer can only exist once the namespace the program creates does.
                    optional=tls.issuer_kind == "Issuer",
                )
            )
    if settings.monitoring.mode == "operator":
        why = "monitoring.mode operator: ServiceMonitors, PrometheusRule and AlertmanagerConfig"
        alt = ", or set monitoring.mode: bundled"
        for plural, version, kind in (
            ("servicemonitors", "v1", "ServiceMonitor"),
            ("prometheusrules", "v1", "PrometheusRule"),
            ("alertmanagerconfigs", "v1alpha1", "AlertmanagerConfig"),
        ):
            found.append(crd(plural, "monitoring.coreos.com", version, kind, why, alt))
    chroma = settings.data.chroma
    snapshot_class = chroma.snapshots.volume_snapshot_class
    if chroma.mode == "in-cluster" and snapshot_class is not None:
        why = "data.chroma.snapshots.volumeSnapshotClass: the snapshot CronJob creates VolumeSnapshots"
        alt = ", or leave data.chroma.snapshots.volumeSnapshotClass unset"
        for plural, kind in (("volumesnapshots", "VolumeSnapshot"), ("volumesnapshotclasses", "VolumeSnapshotClass")):
            found.append(crd(plural, "snapshot.storage.k8s.io", "v1", kind, why, alt))
        found.append(
            Need(
                "object",
                f"VolumeSnapshotClass {snapshot_class}",
                "data.chroma.snapshots.volumeSnapshotClass",
                f"create the VolumeSnapshotClass '{snapshot_class}' for the CSI driver of Chroma's StorageClass",
                f"/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses/{snapshot_class}",
            )
        )
    found += storage_needs(settings)
    return found


def claims(settings: Settings) -> dict[str, str | None]:
    """Config path of each claim's StorageClass setting -> the class it names (None: the default)."""
    result: dict[str, str | None] = {}
    data = settings.data
    for store, store_settings in data.stores().items():
        if store_settings.mode == "in-cluster":
            result[f"data.{store}.storage.storageClass"] = store_settings.storage.storage_class
    if data.postgres.mode == "in-cluster" and data.postgres.backup.enabled:
        result["data.postgres.backup.storage.storageClass"] = data.postgres.backup.storage.storage_class
    if settings.monitoring.mode == "bundled":
        result["monitoring.storage.storageClass"] = settings.monitoring.storage.storage_class
    return result


def storage_needs(settings: Settings) -> list[Need]:
    found = []
    by_class: dict[str, list[str]] = {}
    unnamed = []
    for path, storage_class in claims(settings).items():
        if storage_class is None:
            unnamed.append(path)
        else:
            by_class.setdefault(storage_class, []).append(path)
    for storage_class, paths in sorted(by_class.items()):
        found.append(
            Need(
                "object",
                f"StorageClass {storage_class}",
                f"named by {', '.join(paths)}",
                f"create the StorageClass '{storage_class}', or name one `kubectl get storageclass` lists",
                f"/apis/storage.k8s.io/v1/storageclasses/{storage_class}",
            )
        )
    if unnamed:
        found.append(
            Need(
                "default-storage-class",
                "a default StorageClass",
                f"the claims of {', '.join(unnamed)} name no class",
                'mark one StorageClass with the annotation storageclass.kubernetes.io/is-default-class: "true", or '
                "name a class in those settings",
                "/apis/storage.k8s.io/v1/storageclasses",
            )
        )
    return found


Getter = Callable[[str], tuple[int, Any]]


def _served(crd_object: Mapping[str, Any], version: str) -> bool:
    versions = (crd_object.get("spec") or {}).get("versions") or []
    served = any(v.get("name") == version and v.get("served") for v in versions)
    conditions = (crd_object.get("status") or {}).get("conditions") or []
    established = any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
    return served and established


def _default_class(listing: Any) -> bool:
    keys = ("storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class")
    for item in (listing or {}).get("items") or []:
        annotations = (item.get("metadata") or {}).get("annotations") or {}
        if any(annotations.get(k) == "true" for k in keys):
            return True
    return False


def server_version_problem(version: Mapping[str, Any]) -> str | None:
    """Why the server's version is not supported, from its /version document."""
    try:
        major = int(str(version.get("major", "")).strip("+"))
        minor = int(str(version.get("minor", "")).strip("+"))
    except ValueError:
        return None  # a server that does not say (some builds): the provider decides
    if (major, minor) < MIN_SERVER_VERSION:
        want = ".".join(map(str, MIN_SERVER_VERSION))
        return (
            f"Kubernetes {version.get('gitVersion') or f'{major}.{minor}'}: the program needs {want} or later "
            f"(CronJob timeZone, StatefulSet claim retention); upgrade the cluster"
        )
    return None


def missing(wanted: list[Need], get: Getter) -> tuple[list[str], list[str]]:
    """(problems, notes): each prerequisite the cluster lacks, with its fix; and what could not be read."""
    problems: list[str] = []
    notes: list[str] = []
    status, version = get("/version")
    if status == 200 and isinstance(version, Mapping):
        problem = server_version_problem(version)
        if problem:
            problems.append(problem)
    for need in wanted:
        status, body = get(need.path)
        if status in (401, 403):
            notes.append(f"{need.what}: not checked, the deploying identity may not read it ({status})")
            continue
        if need.kind == "default-storage-class":
            ok = status == 200 and _default_class(body)
        elif need.kind == "crd":
            ok = status == 200 and _served(body or {}, need.version)
        else:
            ok = status == 200
        if ok:
            continue
        if status not in (200, 404):
            notes.append(f"{need.what}: not checked, the API server answered {status}")
            continue
        state = " is installed but does not serve that version" if need.kind == "crd" and status == 200 else ""
        line = f"{need.what}{state} ({need.why}): {need.fix}"
        (notes if need.optional else problems).append(line)
    return problems, notes


def report(stack: str, context: str | None, problems: list[str]) -> str:
    lines = "\n".join(f"  - {p}" for p in problems)
    return (
        f"stack '{stack}': the cluster of context '{context}' lacks {len(problems)} prerequisite(s); nothing was "
        f"deployed:\n{lines}\n{ALL_CRDS}."
    )


def cluster_preflight(
    settings: Settings, stack: str, project_dir: str, environ: Mapping[str, str], warn: Callable[[str], None]
) -> str | None:
    """The refusal to deploy when the target cluster lacks prerequisites, else None. Render mode has no
    cluster; an unreachable one is said, not failed on (the provider itself refuses an `up` there)."""
    target = settings.target
    if target.mode != "cluster":
        return None
    try:
        reader = reader_for(kubeconfig_paths(target.kubeconfig, environ, project_dir), target.context, timeout=10)
        problems, notes = missing(needs(settings), reader.get)
    except ClusterUnreachableError as error:
        warn(
            f"preflight skipped: no cluster to ask for context '{target.context}' ({error}); the CRDs, classes and "
            "issuers this stack needs are not checked (an offline preview); `pulumi up` against the cluster checks them"
        )
        return None
    for note in notes:
        warn(f"preflight: {note}")
    return report(stack, target.context, problems) if problems else None
