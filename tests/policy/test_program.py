"""The pack against the program itself: every stack complies, and every unsafe change is caught.

- Compliance: everything `__main__.py` registers under mocks for dev, staging and production runs
  through every policy with that stack's config: no mandatory violation; the advisory ones are
  exactly those listed (and justified) in policies/README.md.
- Mutation: the production stack's own resources, broken one property at a time: each break is
  caught by the policy that owns the rule, at mandatory level.
- Properties (Hypothesis): whatever services the settings allow, the hardened builder's output
  passes in production; any single unsafe change to any of its workloads fails.
"""

from __future__ import annotations

import copy
import functools
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from components.labels import CHECKSUM_ANNOTATION
from support_policies.framework import NEEDS_KUBERNETES_API_ANNOTATION
from tests.harness import STACKS, ProgramRun, RecordedResource, overlay, raw_stack_value, run_program, stack_config

from .pack_config import read_config_file
from .runner import Violation, format_violations, mandatory, run_pack

# Advisory findings each stack is allowed to have, with the reason; README lists the same.
EXPECTED_ADVISORY: dict[str, set[tuple[str, str]]] = {"dev": set(), "staging": set(), "production": set()}


@functools.cache
def program(stack: str) -> ProgramRun:
    run = run_program(stack)
    assert run.error is None, run.error
    return run


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_complies_with_its_policy_config(stack: str) -> None:
    violations = run_pack(program(stack).resources, stack)
    assert mandatory(violations) == [], format_violations(violations)
    advisory = {(v.policy, v.resource) for v in violations if v.level == "advisory"}
    assert advisory == EXPECTED_ADVISORY[stack], format_violations(violations)


# --- mutations of the production stack ---------------------------------------------------------

Mutation = Callable[[list[RecordedResource]], None]


def find(records: list[RecordedResource], kind: str, name: str) -> RecordedResource:
    return next(r for r in records if r.type.rsplit(":", 1)[-1] == kind and r.name == name)


def api_pod(records: list[RecordedResource]) -> dict[str, Any]:
    pod: dict[str, Any] = find(records, "Deployment", "api-deployment").inputs["spec"]["template"]["spec"]
    return pod


def api_container(records: list[RecordedResource]) -> dict[str, Any]:
    first: dict[str, Any] = api_pod(records)["containers"][0]
    return first


def _set(getter: Callable[[list[RecordedResource]], dict[str, Any]], path: str, value: Any) -> Mutation:
    def mutate(records: list[RecordedResource]) -> None:
        target = getter(records)
        *parents, leaf = path.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value

    return mutate


def _delete(getter: Callable[[list[RecordedResource]], dict[str, Any]], path: str) -> Mutation:
    def mutate(records: list[RecordedResource]) -> None:
        target = getter(records)
        *parents, leaf = path.split(".")
        for part in parents:
            target = target[part]
        del target[leaf]

    return mutate


def _root_user(records: list[RecordedResource]) -> None:
    api_pod(records)["securityContext"]["runAsUser"] = 0
    api_container(records)["securityContext"]["runAsUser"] = 0


def _run_as_root_allowed(records: list[RecordedResource]) -> None:
    api_pod(records)["securityContext"]["runAsNonRoot"] = False
    api_container(records)["securityContext"]["runAsNonRoot"] = False


def _seccomp_unconfined(records: list[RecordedResource]) -> None:
    api_pod(records)["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    api_container(records)["securityContext"]["seccompProfile"] = {"type": "Unconfined"}


def _host_path(records: list[RecordedResource]) -> None:
    api_pod(records)["volumes"].append({"name": "host", "hostPath": {"path": "/var/run"}})


def _secret_into_config_map(records: list[RecordedResource]) -> None:
    secret = find(records, "Secret", "api-secrets").inputs["stringData"]
    find(records, "ConfigMap", "api-env").inputs["data"]["DATABASE_URL"] = secret["DATABASE_URL"]


def _literal_secret_env(records: list[RecordedResource]) -> None:
    secret = find(records, "Secret", "api-secrets").inputs["stringData"]
    env = api_container(records)["env"]
    entry = next(e for e in env if e["name"] == "SECRET_KEY")
    entry.pop("valueFrom")
    entry["value"] = secret["SECRET_KEY"]


def _drop_network_policy(records: list[RecordedResource]) -> None:
    records.remove(find(records, "NetworkPolicy", "api-networkpolicy"))


def _drop_default_deny(records: list[RecordedResource]) -> None:
    records.remove(find(records, "NetworkPolicy", "app-default-deny"))


def _drop_pdb(records: list[RecordedResource]) -> None:
    records.remove(find(records, "PodDisruptionBudget", "api-pdb"))


def _default_provider(records: list[RecordedResource]) -> None:
    find(records, "Deployment", "api-deployment").provider = None


def _beta_api(records: list[RecordedResource]) -> None:
    hpa = find(records, "HorizontalPodAutoscaler", "api-hpa")
    hpa.type = "kubernetes:autoscaling/v2beta2:HorizontalPodAutoscaler"
    hpa.inputs["apiVersion"] = "autoscaling/v2beta2"


def _bare_pod(records: list[RecordedResource]) -> None:
    deployment = find(records, "Deployment", "api-deployment")
    pod = copy.deepcopy(deployment)
    pod.type, pod.name, pod.urn = (
        "kubernetes:core/v1:Pod",
        "debug-pod",
        deployment.urn.replace("api-deployment", "debug-pod"),
    )
    pod.inputs = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**deployment.inputs["metadata"], "name": "debug"},
        "spec": deployment.inputs["spec"]["template"]["spec"],
    }
    records.append(pod)


def _labels_removed(records: list[RecordedResource]) -> None:
    labels = find(records, "Service", "api-service").inputs["metadata"]["labels"]
    del labels["app.kubernetes.io/part-of"]


def _service(records: list[RecordedResource]) -> dict[str, Any]:
    spec: dict[str, Any] = find(records, "Service", "api-service").inputs["spec"]
    return spec


def _pdb(records: list[RecordedResource]) -> dict[str, Any]:
    spec: dict[str, Any] = find(records, "PodDisruptionBudget", "api-pdb").inputs["spec"]
    return spec


def _hpa(records: list[RecordedResource]) -> dict[str, Any]:
    spec: dict[str, Any] = find(records, "HorizontalPodAutoscaler", "api-hpa").inputs["spec"]
    return spec


def _deployment(records: list[RecordedResource]) -> dict[str, Any]:
    spec: dict[str, Any] = find(records, "Deployment", "api-deployment").inputs["spec"]
    return spec


def _metadata(records: list[RecordedResource]) -> dict[str, Any]:
    meta: dict[str, Any] = find(records, "Deployment", "api-deployment").inputs["metadata"]
    return meta


DIGEST_FREE = "ghcr.io/support-platform/api:1.4.0"

# (id, mutation, policy that must catch it)
MUTATIONS: list[tuple[str, Mutation, str]] = [
    ("root-user", _root_user, "pss-run-as-non-root"),
    ("run-as-non-root-false", _run_as_root_allowed, "pss-run-as-non-root"),
    ("uid-below-10000", _set(api_container, "securityContext.runAsUser", 1000), "pss-run-as-non-root"),
    ("privileged", _set(api_container, "securityContext.privileged", True), "pss-no-privileged-containers"),
    (
        "added-capability",
        _set(api_container, "securityContext.capabilities", {"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
        "pss-restricted-capabilities",
    ),
    ("capabilities-not-dropped", _delete(api_container, "securityContext.capabilities"), "pss-restricted-capabilities"),
    (
        "privilege-escalation",
        _set(api_container, "securityContext.allowPrivilegeEscalation", True),
        "pss-no-privilege-escalation",
    ),
    ("seccomp-unconfined", _seccomp_unconfined, "pss-seccomp-profile"),
    (
        "writable-root-fs",
        _set(api_container, "securityContext.readOnlyRootFilesystem", False),
        "read-only-root-filesystem",
    ),
    ("missing-limits", _delete(api_container, "resources.limits"), "container-resources"),
    ("missing-cpu-limit", _delete(api_container, "resources.limits.cpu"), "container-resources"),
    ("missing-requests", _delete(api_container, "resources.requests"), "container-resources"),
    ("missing-liveness-probe", _delete(api_container, "livenessProbe"), "container-probes"),
    ("missing-readiness-probe", _delete(api_container, "readinessProbe"), "container-probes"),
    (
        "liveness-equals-readiness",
        lambda r: api_container(r).__setitem__("livenessProbe", copy.deepcopy(api_container(r)["readinessProbe"])),
        "container-probes",
    ),
    ("latest-tag", _set(api_container, "image", "ghcr.io/support-platform/api:latest"), "image-tag-pinned"),
    ("tag-not-digest", _set(api_container, "image", DIGEST_FREE), "image-tag-pinned"),
    ("host-path", _host_path, "pss-no-host-path-volumes"),
    ("host-network", _set(api_pod, "hostNetwork", True), "pss-no-host-namespaces"),
    ("host-pid", _set(api_pod, "hostPID", True), "pss-no-host-namespaces"),
    (
        "host-port",
        lambda r: api_container(r)["ports"][0].__setitem__("hostPort", 8000),
        "pss-no-host-ports",
    ),
    ("token-automount", _set(api_pod, "automountServiceAccountToken", True), "no-service-account-token-automount"),
    ("default-service-account", _set(api_pod, "serviceAccountName", "default"), "dedicated-service-account"),
    ("default-namespace", _set(_metadata, "namespace", "default"), "no-default-namespace"),
    ("load-balancer-service", _set(_service, "type", "LoadBalancer"), "no-public-services"),
    ("node-port-service", _set(_service, "type", "NodePort"), "no-public-services"),
    ("secret-in-config-map", _secret_into_config_map, "no-secrets-in-config-maps"),
    ("literal-secret-env", _literal_secret_env, "no-literal-secret-env"),
    ("pdb-zero-disruptions", _set(_pdb, "maxUnavailable", 0), "pdb-allows-disruption"),
    ("pdb-removed", _drop_pdb, "pdb-coverage"),
    ("hpa-min-one", _set(_hpa, "minReplicas", 1), "hpa-sanity"),
    ("replicas-pinned-under-hpa", _set(_deployment, "replicas", 3), "hpa-sanity"),
    ("no-spreading", _delete(api_pod, "topologySpreadConstraints"), "replica-spreading"),
    ("network-policy-removed", _drop_network_policy, "network-policy-coverage"),
    ("default-deny-removed", _drop_default_deny, "default-deny-network-policy"),
    ("default-provider", _default_provider, "explicit-kubernetes-provider"),
    ("beta-api", _beta_api, "stable-api-versions"),
    ("bare-pod", _bare_pod, "no-bare-pods"),
    ("labels-removed", _labels_removed, "recommended-labels"),
]


def caught_by(violations: list[Violation], policy: str) -> list[Violation]:
    return [v for v in mandatory(violations) if v.policy == policy]


def production_records() -> list[RecordedResource]:
    return copy.deepcopy(program("production").resources)


@pytest.mark.parametrize(("mutation", "policy"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_each_single_mutation_of_production_is_caught(mutation: Mutation, policy: str) -> None:
    records = production_records()
    mutation(records)
    violations = run_pack(records, "production")
    assert caught_by(violations, policy), f"{policy} did not fire:\n{format_violations(violations)}"


def test_mutations_cover_the_issue_list() -> None:
    ids = {m[0] for m in MUTATIONS}
    assert {
        "root-user",
        "privileged",
        "added-capability",
        "missing-limits",
        "missing-liveness-probe",
        "latest-tag",
        "host-path",
        "host-network",
        "load-balancer-service",
        "secret-in-config-map",
        "pdb-zero-disruptions",
    } <= ids


def test_an_exemption_in_the_config_silences_exactly_that_resource() -> None:
    records = production_records()
    _set(_service, "type", "LoadBalancer")(records)
    raw = read_config_file("production")
    raw["no-public-services"] = {
        **raw["no-public-services"],
        "exemptions": [{"resource": "api-service", "reason": "temporary: cloud LB until the gateway lands"}],
    }
    assert not caught_by(run_pack(records, "production", raw_config=raw), "no-public-services")


# --- properties: whatever the settings allow passes; any unsafe change fails ------------------

NAMES = st.sampled_from(["billing", "search", "notify", "ingest", "reports", "voice"])
PATHS = st.sampled_from(["/healthz", "/live", "/ready", "/status", "/health/deep"])
DIGEST = "@sha256:" + "c" * 64


@st.composite
def service_settings(draw: st.DrawFn, taken_ports: set[int]) -> dict[str, Any]:
    port = draw(st.integers(1024, 60000).filter(lambda p: p not in taken_ports))
    taken_ports.add(port)
    ready, live = draw(st.lists(PATHS, min_size=2, max_size=2, unique=True))
    request_cpu = draw(st.integers(10, 1000))
    request_mem = draw(st.integers(16, 1024))
    autoscale = draw(st.booleans())
    minimum = draw(st.integers(2, 4))
    service: dict[str, Any] = {
        "component": draw(st.sampled_from(["backend", "worker", "tools"])),
        "image": f"ghcr.io/acme/{draw(NAMES)}{DIGEST}",
        "ports": {"http": port},
        "probes": {
            "startup": {"path": live, "failureThreshold": draw(st.integers(1, 60))},
            "readiness": {"path": ready},
            "liveness": {"path": live, "periodSeconds": draw(st.integers(1, 30))},
        },
        "replicas": draw(st.integers(2, 6)),
        "resources": {
            "requests": {"cpu": f"{request_cpu}m", "memory": f"{request_mem}Mi"},
            "limits": {
                "cpu": f"{request_cpu * draw(st.integers(1, 4))}m",
                "memory": f"{request_mem * draw(st.integers(1, 4))}Mi",
            },
        },
        "runAsUser": draw(st.integers(10000, 65535)),
        "writablePaths": draw(st.lists(st.sampled_from(["/tmp", "/var/cache/app", "/run"]), min_size=1, unique=True)),
        "connectsTo": draw(st.lists(st.sampled_from(["postgres", "redis", "chroma", "llm"]), unique=True)),
        "expose": draw(st.booleans()),
        "autoscaling": (
            {"minReplicas": minimum, "maxReplicas": minimum + draw(st.integers(0, 6))}
            if autoscale
            else {"enabled": False}
        ),
    }
    if draw(st.booleans()):
        service["metricsPath"] = "/metrics"
    if "postgres" in service["connectsTo"]:
        # Counted in the connection budget: small enough that six of them fit production's PgBouncer.
        service["databasePool"] = {"size": draw(st.integers(1, 4)), "maxOverflow": draw(st.integers(0, 4))}
    return service


@st.composite
def production_apps(draw: st.DrawFn) -> dict[str, Any]:
    # Up to six services per program run: a run costs far more than a service, so each example
    # carries many service settings at once.
    names = draw(st.lists(NAMES, min_size=1, max_size=6, unique=True))
    ports: set[int] = set()
    extra = {name: draw(service_settings(ports)) for name in names}
    return overlay(raw_stack_value("production", "app"), {"services": extra})


def run_production(app: dict[str, Any]) -> ProgramRun:
    # Every exposed service gets its own path at the edge (settings require a route for each).
    routes = {"/api": "api", "/": "web"}
    routes.update({f"/{name}": name for name, svc in app["services"].items() if svc.get("expose")})
    edge = overlay(raw_stack_value("production", "edge"), {"routes": routes})
    config, secret_keys = stack_config("production", overrides={"app": app, "edge": edge})
    run = run_program("production", config, secret_keys)
    assert run.error is None, run.error
    return run


PROPERTY_SETTINGS = settings(max_examples=6)


@PROPERTY_SETTINGS
@given(app=production_apps())
def test_whatever_the_builder_emits_passes_in_production(app: dict[str, Any]) -> None:
    run = run_production(app)
    violations = run_pack(run.resources, "production")
    assert mandatory(violations) == [], format_violations(violations)


UNSAFE_CONTAINER_CHANGES: list[tuple[str, str, Any, str]] = [
    ("securityContext.privileged", "set", True, "pss-no-privileged-containers"),
    ("securityContext.allowPrivilegeEscalation", "set", True, "pss-no-privilege-escalation"),
    ("securityContext.runAsUser", "set", 0, "pss-run-as-non-root"),
    ("securityContext.readOnlyRootFilesystem", "set", False, "read-only-root-filesystem"),
    ("securityContext.capabilities", "set", {"add": ["NET_ADMIN"], "drop": ["ALL"]}, "pss-restricted-capabilities"),
    ("resources.limits", "delete", None, "container-resources"),
    ("livenessProbe", "delete", None, "container-probes"),
    ("readinessProbe", "delete", None, "container-probes"),
    ("image", "set", "ghcr.io/acme/x:latest", "image-tag-pinned"),
]
UNSAFE_POD_CHANGES: list[tuple[str, str, Any, str]] = [
    ("hostNetwork", "set", True, "pss-no-host-namespaces"),
    ("hostIPC", "set", True, "pss-no-host-namespaces"),
    ("automountServiceAccountToken", "set", True, "no-service-account-token-automount"),
    ("volumes", "append", {"name": "h", "hostPath": {"path": "/"}}, "pss-no-host-path-volumes"),
]
# Where the pod template sits in each workload kind (the guardrails' "pod spec"), stated here again
# rather than imported from the pack: a mistake in the pack's own table must not hide from its test.
POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def _apply(target: dict[str, Any], path: str, how: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    if how == "delete":
        target.pop(leaf, None)
    elif how == "append":
        target.setdefault(leaf, []).append(copy.deepcopy(value))
    else:
        target[leaf] = copy.deepcopy(value)


def pod_template(record: RecordedResource) -> dict[str, Any]:
    template: dict[str, Any] = record.inputs
    for part in POD_TEMPLATE_PATHS[record.kind]:
        template = template[part]
    return template


def production_workloads() -> list[RecordedResource]:
    """Every workload production deploys: app services, stores, monitoring servers, Jobs, CronJobs."""
    resources = program("production").resources
    return [r for r in resources if r.type.startswith("kubernetes:") and r.kind in POD_TEMPLATE_PATHS]


def allowed_by_declared_needs(workload: RecordedResource, policy: str) -> bool:
    """A change the workload's own declarations allow is not unsafe for that workload."""
    template = pod_template(workload)
    if policy == "no-service-account-token-automount":
        annotations = [workload.inputs["metadata"].get("annotations", {}), template["metadata"].get("annotations", {})]
        return any(a.get(NEEDS_KUBERNETES_API_ANNOTATION) for a in annotations)
    if policy == "container-probes":
        return workload.kind in ("Job", "CronJob")  # run to completion: nothing to probe
    return False


def test_the_workload_pool_covers_every_kind_and_both_exceptions() -> None:
    workloads = production_workloads()
    assert {w.kind for w in workloads} >= {"Deployment", "StatefulSet", "Job", "CronJob"}
    policies = {c[3] for c in UNSAFE_POD_CHANGES + UNSAFE_CONTAINER_CHANGES}
    assert any(allowed_by_declared_needs(w, "no-service-account-token-automount") for w in workloads)
    assert any(not allowed_by_declared_needs(w, p) for w in workloads for p in policies)


def production_workload(name: str) -> RecordedResource:
    return next(w for w in production_workloads() if w.name == name)


# Drawn when the test runs (the names come from a program run, not from import time).
WORKLOAD_NAMES = st.deferred(lambda: st.sampled_from(sorted(w.name for w in production_workloads())))


@settings(max_examples=200)
@given(
    name=WORKLOAD_NAMES,
    change=st.sampled_from(UNSAFE_CONTAINER_CHANGES + UNSAFE_POD_CHANGES),
    container_pick=st.integers(0, 10),
)
# Found on CI: kube-state-metrics declares that it calls the API, so a token is no violation there.
@example(name="monitoring-kube-state-metrics", change=UNSAFE_POD_CHANGES[2], container_pick=0)
@example(name="postgres-backup-cronjob", change=UNSAFE_CONTAINER_CHANGES[6], container_pick=0)
def test_any_single_unsafe_change_to_any_workload_fails(
    name: str, change: tuple[str, str, Any, str], container_pick: int
) -> None:
    # At the level the property is about: one workload record and the rule that owns the change.
    workload = production_workload(name)
    path, how, value, policy = change
    assert not caught_by(run_pack([workload], "production", only=[policy]), policy), "unsafe before the change"
    broken = pickle.loads(pickle.dumps(workload))  # noqa: S301 - our own record
    pod = pod_template(broken)["spec"]
    containers = pod["containers"]
    target = containers[container_pick % len(containers)] if change in UNSAFE_CONTAINER_CHANGES else pod
    _apply(target, path, how, value)
    caught = [v for v in caught_by(run_pack([broken], "production", only=[policy]), policy) if v.resource == name]
    if allowed_by_declared_needs(workload, policy):
        assert caught == [], f"{policy} objected to what {name} declares it needs"
    else:
        assert caught, f"{policy} missed {path} on {workload.kind} {name}"


# --- a first preview: what is computed from secrets is unknown -----------------------------------


def first_preview_view(records: list[RecordedResource]) -> list[RecordedResource]:
    """The resources as a first `pulumi preview` sends them: generated passwords do not exist yet,
    so every Secret's data and every checksum computed from them is unknown. Images are unknown
    too, as they are when this update builds them (their digest exists only after the push)."""
    view = copy.deepcopy(records)
    for record in view:
        if record.kind == "Secret":
            for section in ("data", "stringData"):
                if section in record.inputs:
                    record.inputs[section] = {key: UNKNOWN_STRING_VALUE for key in record.inputs[section]}
        template = record.inputs.get("spec", {}).get("template", {})
        annotations = template.get("metadata", {}).get("annotations", {})
        if CHECKSUM_ANNOTATION in annotations:
            annotations[CHECKSUM_ANNOTATION] = UNKNOWN_STRING_VALUE
        for container in template.get("spec", {}).get("containers", []):
            container["image"] = UNKNOWN_STRING_VALUE
    return view


@pytest.mark.parametrize("stack", STACKS)
def test_no_policy_is_skipped_in_a_first_preview(stack: str) -> None:
    view = first_preview_view(program(stack).resources)
    assert any(
        r.kind == "Deployment"
        and r.inputs["spec"]["template"]["metadata"]["annotations"][CHECKSUM_ANNOTATION] == UNKNOWN_STRING_VALUE
        for r in view
    )
    violations = run_pack(view, stack)
    skipped = [v for v in violations if "can't run" in v.message]
    assert skipped == [], format_violations(skipped)
    assert mandatory(violations) == [], format_violations(violations)
