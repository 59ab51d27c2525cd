"""Availability (stack policies): PDB coverage and sanity, HPA sanity, replica spreading."""

from __future__ import annotations

from typing import Any

import pytest

from support_policies import availability

from .fixtures import (
    NAMESPACE,
    POD_SPEC_PATHS,
    REPLICATED_KINDS,
    TYPES,
    assert_finding,
    check_stack,
    metadata,
    pod_metadata_path,
    pod_spec,
    resource,
    selector,
    subject_label,
    workload,
)

KINDS = pytest.mark.parametrize("kind", REPLICATED_KINDS)


def app(kind: str, replicas: int | None = 3, spec: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    resource_type, props = workload(kind, spec, replicas=replicas, **kwargs)
    return resource(resource_type, props, "api")


def pdb(logical: str = "api-pdb", namespace: str = NAMESPACE, **spec: Any) -> Any:
    body = {"selector": {"matchLabels": selector()}, **spec}
    if "maxUnavailable" not in spec and "minAvailable" not in spec:
        body["maxUnavailable"] = 1
    return resource(TYPES["PodDisruptionBudget"], {"metadata": metadata(logical, namespace), "spec": body}, logical)


def hpa(kind: str = "Deployment", name: str = "api", min_replicas: int | None = 2, api_version: str = "apps/v1") -> Any:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": name},
        "maxReplicas": 4,
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
            }
        ],
    }
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    return resource(TYPES["HorizontalPodAutoscaler"], {"metadata": metadata("api-hpa"), "spec": spec}, "api-hpa")


def messages_for(reported: list[tuple[str, str]], name: str) -> list[str]:
    return [message for who, message in reported if who == name]


# --- PDB coverage ---------------------------------------------------------------------------


@KINDS
def test_replicated_workload_without_pdb_fails(kind: str) -> None:
    reported = check_stack(availability.pdb_coverage, [app(kind)])
    assert_finding(
        messages_for(reported, "api"),
        subject=subject_label(kind),
        path=f"{pod_metadata_path(kind)}.labels",
        fix="add a PodDisruptionBudget with maxUnavailable: 1",
    )


@KINDS
def test_hpa_owned_workload_without_pdb_fails(kind: str) -> None:
    reported = check_stack(availability.pdb_coverage, [app(kind, replicas=None), hpa(kind)])
    assert len(messages_for(reported, "api")) == 1


@KINDS
@pytest.mark.parametrize(
    "budget",
    [
        pdb(namespace="other"),
        pdb(selector={"matchLabels": {"app.kubernetes.io/name": "web"}}),
        resource(
            TYPES["PodDisruptionBudget"],
            {"metadata": metadata("no-selector"), "spec": {"maxUnavailable": 1}},
            "no-selector",
        ),
    ],
    ids=["other-namespace", "other-pods", "no-selector"],
)
def test_pdb_that_does_not_select_the_pods_does_not_count(kind: str, budget: Any) -> None:
    assert len(check_stack(availability.pdb_coverage, [app(kind), budget])) == 1


@KINDS
def test_covered_or_single_replica_workloads_pass(kind: str) -> None:
    assert check_stack(availability.pdb_coverage, [app(kind), pdb()]) == []
    assert check_stack(availability.pdb_coverage, [app(kind, replicas=1)]) == []
    assert check_stack(availability.pdb_coverage, [app(kind, replicas=None)]) == []
    assert check_stack(availability.pdb_coverage, [app(kind), pdb(selector={})]) == []


# --- PDB allows disruption ------------------------------------------------------------------


@pytest.mark.parametrize(("value", "found"), [(0, "0"), ("0", '"0"'), ("0%", '"0%"')])
def test_max_unavailable_zero_fails(value: Any, found: str) -> None:
    reported = check_stack(availability.pdb_allows_disruption, [app("Deployment"), pdb(maxUnavailable=value)])
    assert_finding(
        messages_for(reported, "api-pdb"),
        subject=f'{TYPES["PodDisruptionBudget"]} "api-pdb"',
        path="spec.maxUnavailable",
        found=found,
        fix="set maxUnavailable to 1",
    )


@KINDS
@pytest.mark.parametrize(
    ("replicas", "min_available", "found"),
    [(3, 3, "3"), (3, "100%", '"100%"'), (1, 1, "1"), (1, "50%", '"50%"'), (2, "60%", '"60%"'), (None, 1, "1")],
)
def test_min_available_leaving_no_room_fails(kind: str, replicas: int | None, min_available: Any, found: str) -> None:
    reported = check_stack(
        availability.pdb_allows_disruption, [app(kind, replicas=replicas), pdb(minAvailable=min_available)]
    )
    message = assert_finding(
        messages_for(reported, "api-pdb"),
        subject=f'{TYPES["PodDisruptionBudget"]} "api-pdb"',
        path="spec.minAvailable",
        found=found,
        fix="maxUnavailable: 1",
    )
    if min_available != "100%":
        assert subject_label(kind) in message


@KINDS
def test_min_available_counts_the_hpa_floor(kind: str) -> None:
    stack = [app(kind, replicas=None), hpa(kind, min_replicas=2), pdb(minAvailable=2)]
    assert len(check_stack(availability.pdb_allows_disruption, stack)) == 1
    stack = [app(kind, replicas=None), hpa(kind, min_replicas=3), pdb(minAvailable=2)]
    assert check_stack(availability.pdb_allows_disruption, stack) == []


@KINDS
@pytest.mark.parametrize(
    "spec", [{"maxUnavailable": 1}, {"maxUnavailable": "25%"}, {"minAvailable": 2}, {"minAvailable": "50%"}]
)
def test_budgets_that_allow_a_disruption_pass(kind: str, spec: dict[str, Any]) -> None:
    assert check_stack(availability.pdb_allows_disruption, [app(kind, replicas=3), pdb(**spec)]) == []


# --- HPA ------------------------------------------------------------------------------------


def test_hpa_without_target_fails() -> None:
    reported = check_stack(availability.hpa_sanity, [hpa(name="missing")])
    assert_finding(
        messages_for(reported, "api-hpa"),
        subject=f'{TYPES["HorizontalPodAutoscaler"]} "api-hpa"',
        path="spec.scaleTargetRef",
        found='{"kind": "Deployment", "name": "missing"}',
        fix="point scaleTargetRef at",
    )


def test_hpa_target_must_match_kind_group_and_namespace() -> None:
    assert len(check_stack(availability.hpa_sanity, [app("Deployment", replicas=None), hpa("StatefulSet")])) == 1
    assert (
        len(
            check_stack(
                availability.hpa_sanity, [app("Deployment", replicas=None), hpa(api_version="extensions/v1beta1")]
            )
        )
        == 1
    )
    other_ns = resource(*workload("Deployment", namespace="other"), "api")
    assert len(check_stack(availability.hpa_sanity, [other_ns, hpa()])) == 1


@pytest.mark.parametrize(("min_replicas", "found"), [(1, "1"), (None, "<unset>")])
def test_hpa_min_replicas_follows_the_stack_setting(min_replicas: int | None, found: str) -> None:
    stack = [app("Deployment", replicas=None), hpa(min_replicas=min_replicas)]
    assert check_stack(availability.hpa_sanity, stack) == []
    reported = check_stack(availability.hpa_sanity, stack, config={"minimumMinReplicas": 2})
    assert_finding(
        messages_for(reported, "api-hpa"),
        subject=f'{TYPES["HorizontalPodAutoscaler"]} "api-hpa"',
        path="spec.minReplicas",
        found=found,
        fix="set minReplicas to 2 or more",
    )


@KINDS
def test_hpa_owned_workload_pinning_replicas_fails(kind: str) -> None:
    reported = check_stack(availability.hpa_sanity, [app(kind, replicas=3), hpa(kind)])
    assert_finding(
        messages_for(reported, "api"),
        subject=subject_label(kind),
        path="spec.replicas",
        found="3",
        fix="omit spec.replicas",
    )


@KINDS
def test_sane_hpa_passes(kind: str) -> None:
    assert (
        check_stack(availability.hpa_sanity, [app(kind, replicas=None), hpa(kind)], config={"minimumMinReplicas": 2})
        == []
    )


# --- HPA after an up: outputs carry what the API server filled in ----------------------------

APPLY_MANAGER = "pulumi-kubernetes-7c1d5e0a"


def managed_field(manager: str, operation: str, spec_fields: dict[str, Any], subresource: str | None = None) -> Any:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": "apps/v1",
        "time": "2026-01-01T00:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": spec_fields},
    }
    if subresource is not None:
        entry["subresource"] = subresource
    return entry


def live(kind: str, replicas: int, *entries: Any) -> Any:
    """A workload as a stack policy sees it after an up: live object with managedFields."""
    resource_type, props = workload(kind, replicas=replicas)
    props["metadata"]["managedFields"] = list(entries)
    props["metadata"]["uid"] = "0b0e7c52-4c47-4d1e-9f4e-3f0a8c4f5a11"
    props["status"] = {"replicas": replicas, "readyReplicas": replicas}
    return resource(resource_type, props, "api")


APPLIED_WITHOUT_REPLICAS = managed_field(APPLY_MANAGER, "Apply", {"f:selector": {}, "f:template": {}})
APPLIED_WITH_REPLICAS = managed_field(APPLY_MANAGER, "Apply", {"f:replicas": {}, "f:selector": {}, "f:template": {}})
HPA_SCALED = managed_field("kube-controller-manager", "Update", {"f:replicas": {}}, subresource="scale")


@KINDS
@pytest.mark.parametrize(
    "entries",
    [(APPLIED_WITHOUT_REPLICAS,), (APPLIED_WITHOUT_REPLICAS, HPA_SCALED)],
    ids=["server-defaulted", "hpa-scaled"],
)
def test_replicas_the_server_or_the_hpa_filled_in_pass(kind: str, entries: tuple[Any, ...]) -> None:
    """The issue-9 blocker: the API server defaults spec.replicas to 1 on a workload that omits it."""
    stack = [live(kind, 1, *entries), hpa(kind)]
    assert check_stack(availability.hpa_sanity, stack, config={"minimumMinReplicas": 2}) == []
    scaled = [live(kind, 3, *entries), hpa(kind)]
    assert check_stack(availability.hpa_sanity, scaled, config={"minimumMinReplicas": 2}) == []


@KINDS
@pytest.mark.parametrize(
    "entries", [(APPLIED_WITH_REPLICAS,), (APPLIED_WITH_REPLICAS, HPA_SCALED)], ids=["applied", "applied-and-scaled"]
)
def test_replicas_the_program_applied_still_fail_after_an_up(kind: str, entries: tuple[Any, ...]) -> None:
    reported = check_stack(availability.hpa_sanity, [live(kind, 3, *entries), hpa(kind)])
    assert_finding(
        messages_for(reported, "api"),
        subject=subject_label(kind),
        path="spec.replicas",
        found="3",
        fix="omit spec.replicas",
    )


@KINDS
def test_undeclared_live_replicas_do_not_make_a_workload_replicated(kind: str) -> None:
    """Without an HPA, a server-defaulted (or hand-scaled) count is not the program's: no PDB needed."""
    scaled_by_hand = managed_field("kubectl", "Update", {"f:replicas": {}}, subresource="scale")
    assert check_stack(availability.pdb_coverage, [live(kind, 3, APPLIED_WITHOUT_REPLICAS, scaled_by_hand)]) == []
    assert len(check_stack(availability.pdb_coverage, [live(kind, 3, APPLIED_WITH_REPLICAS)])) == 1


def test_declared_replicas_reads_inputs_as_written() -> None:
    _, props = workload("Deployment", replicas=3)
    assert availability.declared_replicas(props) == 3
    _, props = workload("Deployment")
    assert availability.declared_replicas(props) is None
    props["metadata"]["managedFields"] = [APPLIED_WITHOUT_REPLICAS]
    assert availability.declared_replicas(props) is None


# --- spreading ------------------------------------------------------------------------------


def unspread(kind: str) -> dict[str, Any]:
    spec = pod_spec(kind)
    del spec["topologySpreadConstraints"]
    return spec


@KINDS
def test_replicated_workload_without_spreading_fails(kind: str) -> None:
    reported = check_stack(availability.replica_spreading, [app(kind, spec=unspread(kind))])
    assert_finding(
        messages_for(reported, "api"),
        subject=subject_label(kind),
        path=f"{POD_SPEC_PATHS[kind]}.topologySpreadConstraints",
        found="<unset>",
        fix="topologySpreadConstraints over kubernetes.io/hostname",
    )


@KINDS
def test_hpa_owned_workload_needs_spreading(kind: str) -> None:
    stack = [app(kind, replicas=None, spec=unspread(kind)), hpa(kind)]
    assert len(check_stack(availability.replica_spreading, stack)) == 1


@KINDS
def test_spread_constraint_selecting_other_pods_does_not_count(kind: str) -> None:
    spec = pod_spec(kind)
    for constraint in spec["topologySpreadConstraints"]:
        constraint["labelSelector"] = {"matchLabels": {"app.kubernetes.io/name": "web"}}
    assert len(check_stack(availability.replica_spreading, [app(kind, spec=spec)])) == 1


@KINDS
@pytest.mark.parametrize(
    "placement",
    [
        {
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "matchLabelKeys": ["pod-template-hash"],
                }
            ]
        },
        {
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": selector()},
                            },
                        }
                    ]
                }
            }
        },
        {
            "affinity": {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": selector()}}
                    ]
                }
            }
        },
    ],
    ids=["match-label-keys", "preferred-anti-affinity", "required-anti-affinity"],
)
def test_spreading_alternatives_pass(kind: str, placement: dict[str, Any]) -> None:
    spec = unspread(kind)
    spec.update(placement)
    assert check_stack(availability.replica_spreading, [app(kind, spec=spec)]) == []


@KINDS
def test_single_replica_needs_no_spreading(kind: str) -> None:
    assert check_stack(availability.replica_spreading, [app(kind, replicas=1, spec=unspread(kind))]) == []
