"""Verify a deploy after `pulumi up`: the cluster runs what the update deployed, ready, and the edge answers.

    venv/bin/python scripts/verify_deploy.py --stack production [--timeout 300] [--settle 20] [--edge-url URL]

From the stack's own state (`pulumi stack export`: every backend serves it) it takes every Deployment,
StatefulSet and Job the update left, and asks the cluster (the stack's kubeconfig and context, read
with components/cluster_reader.py) until each one is done or the timeout passes:

- a Deployment rolled out at its new generation: observedGeneration caught up, every replica updated,
  ready and available, no pod of an older ReplicaSet left, running the images the update deployed;
- a StatefulSet likewise (updated and ready replicas, currentRevision = updateRevision);
- a Job (the release's migration) succeeded; a failed Job or a Deployment past its progress deadline
  fails at once;
then it holds for `--settle` seconds and asks again, since a release can turn unready right after it
starts. Last, through the edge: each route's readiness path (GET https://<host><path>) must answer 2xx.
An edge that cannot be reached from where this runs (DNS, a private load balancer) is reported and
skipped, unless `--edge-url` names where to reach it (then the request carries the host as Host).
Exit 0 when everything holds, 1 when something does not (each failure with its reason), 2 when the
stack cannot be read at all. Render stacks (dev) have no cluster: nothing to verify.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.cluster_reader import ClusterUnreachableError, kubeconfig_paths, reader_for  # noqa: E402

STACK_SH = ROOT / "scripts" / "stack.sh"
PROJECT = "support-platform"
WORKLOAD_TYPES = {
    "kubernetes:apps/v1:Deployment": ("apps/v1", "deployments"),
    "kubernetes:apps/v1:StatefulSet": ("apps/v1", "statefulsets"),
    "kubernetes:batch/v1:Job": ("batch/v1", "jobs"),
}
Get = Callable[[str], tuple[int, Any]]


@dataclass(frozen=True)
class Workload:
    kind: str  # deployments, statefulsets, jobs
    namespace: str
    name: str
    images: tuple[str, ...]  # the containers' images the update deployed

    @property
    def label(self) -> str:
        kind = {"deployments": "Deployment", "statefulsets": "StatefulSet", "jobs": "Job"}[self.kind]
        return f"{kind} {self.namespace}/{self.name}"

    def path(self, api: str) -> str:
        return f"/apis/{api}/namespaces/{self.namespace}/{self.kind}/{self.name}"


def workloads_in(resources: Iterable[Mapping[str, Any]]) -> list[Workload]:
    found = []
    for resource in resources:
        known = WORKLOAD_TYPES.get(str(resource.get("type")))
        outputs = resource.get("outputs") or {}
        metadata = outputs.get("metadata") or {}
        if known is None or not metadata.get("name"):
            continue
        template = ((outputs.get("spec") or {}).get("template") or {}).get("spec") or {}
        images = tuple(str(c.get("image")) for c in template.get("containers") or [])
        found.append(Workload(known[1], str(metadata.get("namespace") or "default"), str(metadata["name"]), images))
    return sorted(found, key=lambda w: (w.kind, w.namespace, w.name))


# --- judging one live object: None when done, else why not (and whether waiting can help) ---------


@dataclass(frozen=True)
class Verdict:
    reason: str | None
    final: bool = False  # no point waiting: a failed Job, a Deployment past its deadline


def _condition(live: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in (live.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def _live_images(live: Mapping[str, Any]) -> tuple[str, ...]:
    spec = ((live.get("spec") or {}).get("template") or {}).get("spec") or {}
    return tuple(str(c.get("image")) for c in spec.get("containers") or [])


def judge(workload: Workload, live: Mapping[str, Any]) -> Verdict:
    if workload.kind == "jobs":
        return _judge_job(live)
    if workload.images and _live_images(live) != workload.images:
        live_images, deployed = ", ".join(_live_images(live)), ", ".join(workload.images)
        return Verdict(f"runs {live_images}, not the {deployed} the update deployed")
    metadata, status = live.get("metadata") or {}, live.get("status") or {}
    generation, observed = int(metadata.get("generation") or 0), int(status.get("observedGeneration") or 0)
    if observed < generation:
        return Verdict(f"generation {generation} not yet observed by its controller (at {observed})")
    want = int((live.get("spec") or {}).get("replicas", 1))
    counts = {k: int(status.get(k) or 0) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")}
    if workload.kind == "deployments":
        return _judge_deployment(live, want, counts)
    return _judge_statefulset(live, want, counts)


def _judge_job(live: Mapping[str, Any]) -> Verdict:
    failed = _condition(live, "Failed")
    if failed.get("status") == "True":
        return Verdict(f"failed: {failed.get('reason', '')} {failed.get('message', '')}".strip(), final=True)
    status = live.get("status") or {}
    done = _condition(live, "Complete").get("status") == "True" or int(status.get("succeeded") or 0) >= 1
    return Verdict(None if done else f"not complete (active {status.get('active', 0)})")


def _judge_deployment(live: Mapping[str, Any], want: int, counts: Mapping[str, int]) -> Verdict:
    progressing = _condition(live, "Progressing")
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Verdict(f"rollout stalled: {progressing.get('message', 'progress deadline exceeded')}", final=True)
    if (
        counts["replicas"] <= want
        and min(counts["updatedReplicas"], counts["availableReplicas"], counts["readyReplicas"]) < want
    ):
        return Verdict(
            f"{counts['updatedReplicas']}/{want} updated, {counts['readyReplicas']}/{want} ready, "
            f"{counts['availableReplicas']}/{want} available"
        )
    total, new, ready = counts["replicas"], counts["updatedReplicas"], counts["readyReplicas"]
    if total > new:
        return Verdict(
            f"rollout not finished: {total - new} pod(s) of the previous release still running beside {new} new, "
            f"{ready}/{total} ready"
        )
    return Verdict(None)


def _judge_statefulset(live: Mapping[str, Any], want: int, counts: Mapping[str, int]) -> Verdict:
    status = live.get("status") or {}
    rolling = ((live.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    if counts["readyReplicas"] < want or (rolling and counts["updatedReplicas"] < want):
        return Verdict(f"{counts['updatedReplicas']}/{want} updated, {counts['readyReplicas']}/{want} ready")
    if rolling and status.get("currentRevision") != status.get("updateRevision"):
        return Verdict(f"revision {status.get('updateRevision')} not yet current ({status.get('currentRevision')})")
    return Verdict(None)


def unready_pods(get: Get, workload: Workload, live: Mapping[str, Any]) -> list[str]:
    """The workload's pods that are not ready, each with what its status says."""
    selector = ((live.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if workload.kind == "jobs" or not selector:
        return []
    query = urllib.parse.urlencode({"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))})
    status, listing = get(f"/api/v1/namespaces/{workload.namespace}/pods?{query}")
    if status != 200:
        return []
    lines = []
    for pod in (listing or {}).get("items") or []:
        ready = _condition(pod, "Ready")
        if ready.get("status") == "True":
            continue
        states = []
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            state = container.get("state") or {}
            detail = next(
                (f"{k} {v.get('reason', '')}".strip() for k, v in state.items() if isinstance(v, Mapping)), ""
            )
            states.append(f"{container.get('name')} {'ready' if container.get('ready') else 'not ready'} ({detail})")
        why = " ".join(x for x in (ready.get("reason"), ready.get("message")) if x)
        phase = (pod.get("status") or {}).get("phase", "?")
        lines.append(
            f"pod {pod['metadata']['name']} {phase}, not ready{': ' + why if why else ''}; {'; '.join(states)}"
        )
    return lines


def check_workloads(get: Get, workloads: Sequence[Workload]) -> dict[Workload, Verdict]:
    verdicts = {}
    for workload in workloads:
        api = "batch/v1" if workload.kind == "jobs" else "apps/v1"
        status, live = get(workload.path(api))
        if status == 404:
            verdicts[workload] = Verdict("not found on the cluster", final=True)
        elif status != 200:
            verdicts[workload] = Verdict(f"cannot be read (HTTP {status})")
        else:
            verdicts[workload] = judge(workload, live or {})
    return verdicts


# --- the edge --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeCheck:
    host: str
    path: str
    service: str


def _routes(resource: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """(hosts, [(path prefix, service)]) of an HTTPRoute or an Ingress in the state."""
    outputs = resource.get("outputs") or {}
    spec = outputs.get("spec") or {}
    if outputs.get("kind") == "HTTPRoute":
        routes = [
            (str(m.get("path", {}).get("value", "/")), str(ref.get("name")))
            for rule in spec.get("rules") or []
            if rule.get("backendRefs")
            for m in rule.get("matches") or [{}]
            for ref in rule["backendRefs"][:1]
        ]
        return [str(h) for h in spec.get("hostnames") or []], routes
    if outputs.get("kind") == "Ingress":
        hosts, routes = [], []
        for rule in spec.get("rules") or []:
            hosts.append(str(rule.get("host")))
            for p in (rule.get("http") or {}).get("paths") or []:
                routes.append(
                    (str(p.get("path", "/")), str(((p.get("backend") or {}).get("service") or {}).get("name")))
                )
        return hosts, routes
    return [], []


def edge_checks(resources: Sequence[Mapping[str, Any]]) -> tuple[list[EdgeCheck], list[str]]:
    """Each exposed service's readiness path, on each host, where the edge routes that path to it."""
    readiness: dict[tuple[str, str], str] = {}
    for resource in resources:
        outputs = resource.get("outputs") or {}
        if resource.get("type") != "kubernetes:apps/v1:Deployment":
            continue
        name = str((outputs.get("metadata") or {}).get("name"))
        containers = (((outputs.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        for container in containers:
            probe = ((container.get("readinessProbe") or {}).get("httpGet") or {}).get("path")
            if container.get("name") == name and probe:
                readiness[(str((outputs.get("metadata") or {}).get("namespace")), name)] = str(probe)
    checks: list[EdgeCheck] = []
    notes: list[str] = []
    for resource in resources:
        hosts, routes = _routes(resource)
        if not hosts or not routes:
            continue
        namespace = str(((resource.get("outputs") or {}).get("metadata") or {}).get("namespace"))
        for prefix, service in routes:
            path = readiness.get((namespace, service))
            if path is None:
                continue
            # The edge sends a path to the longest matching prefix: check only where that is the service.
            matching = [(p, s) for p, s in routes if path == p or path.startswith(p.rstrip("/") + "/")]
            if not matching or max(matching, key=lambda r: len(r[0]))[1] != service:
                notes.append(
                    f"{service}: its readiness path {path} does not reach it through the edge (route {prefix})"
                )
                continue
            checks += [EdgeCheck(host, path, service) for host in hosts]
    return sorted(set(checks), key=lambda c: (c.host, c.path)), sorted(set(notes))


def probe_edge(check: EdgeCheck, edge_url: str | None, timeout: float = 10.0) -> tuple[bool | None, str]:
    """(True: answered 2xx, False: answered otherwise, None: not reachable from here) and what happened."""
    base = edge_url.rstrip("/") if edge_url else f"https://{check.host}"
    url = base + check.path
    request = urllib.request.Request(url, headers={"Host": check.host} if edge_url else {})  # noqa: S310 - http(s) only
    if not url.startswith(("https://", "http://")):
        return False, f"{url}: only http and https"
    context = ssl.create_default_context()
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            return True, f"GET {url} (Host {check.host}) answered {response.status}"
    except urllib.error.HTTPError as error:
        return False, f"GET {url} (Host {check.host}) answered {error.code} {error.reason}"
    except (urllib.error.URLError, OSError) as error:
        return None, f"GET {url}: not reachable from here ({getattr(error, 'reason', error)})"


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class Report:
    failures: list[str]
    passed: list[str]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures

    def render(self) -> str:
        lines = [f"  ok    {p}" for p in self.passed] + [f"  FAIL  {f}" for f in self.failures]
        lines += [f"  note  {n}" for n in self.notes]
        head = "verification passed" if self.ok else f"verification failed: {len(self.failures)} problem(s)"
        return "\n".join([head, *lines])


def wait_for_workloads(
    get: Get, workloads: Sequence[Workload], timeout: float, settle: float, sleep: Callable[[float], None] = time.sleep
) -> dict[Workload, Verdict]:
    """Ask until every workload is done, one is finally broken, or the timeout passes; then hold `settle`
    seconds and ask once more (a release can turn unready right after it starts)."""
    deadline = time.monotonic() + timeout
    while True:
        verdicts = check_workloads(get, workloads)
        pending = [v for v in verdicts.values() if v.reason is not None]
        if any(v.final for v in pending) or (pending and time.monotonic() >= deadline):
            return verdicts
        if not pending:
            if settle <= 0:
                return verdicts
            sleep(settle)
            return check_workloads(get, workloads)
        sleep(min(3.0, max(0.0, deadline - time.monotonic())))


def verify(
    get: Get,
    resources: Sequence[Mapping[str, Any]],
    timeout: float,
    settle: float,
    edge_url: str | None,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    report = Report([], [], [])
    workloads = workloads_in(resources)
    verdicts = wait_for_workloads(get, workloads, timeout, settle, sleep)
    for workload, verdict in verdicts.items():
        if verdict.reason is None:
            report.passed.append(f"{workload.label}: {'succeeded' if workload.kind == 'jobs' else 'rolled out, ready'}")
            continue
        report.failures.append(f"{workload.label}: {verdict.reason}")
        if workload.kind == "jobs":
            continue
        status, live = get(workload.path("apps/v1"))
        if status == 200:
            report.failures += [f"{workload.label}: {line}" for line in unready_pods(get, workload, live or {})]
    checks, notes = edge_checks(resources)
    report.notes += notes
    for check in checks:
        answered, what = probe_edge(check, edge_url)
        if answered is True:
            report.passed.append(f"edge {check.service}: {what}")
        elif answered is False or edge_url:
            report.failures.append(f"edge {check.service}: {what}")
        else:
            report.notes.append(f"edge {check.service}: {what}; skipped")
    return report


def pulumi_json(stack: str, *args: str) -> Any:
    proc = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [str(STACK_SH), "run", stack, *args, "--stack", stack], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"`pulumi {' '.join(args)}` failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout or "null")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, choices=("dev", "staging", "production"))
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for rollouts (default 300)")
    parser.add_argument("--settle", type=float, default=20, help="seconds everything must stay ready (default 20)")
    parser.add_argument("--edge-url", help="where to reach the edge, e.g. https://203.0.113.7 (Host: each host)")
    args = parser.parse_args(argv)
    try:
        config = pulumi_json(args.stack, "config", "--json")
        target = (config.get(f"{PROJECT}:target") or {}).get("objectValue") or {}
        if target.get("mode") != "cluster":
            print(f"stack '{args.stack}' renders manifests: no cluster to verify")
            return 0
        resources = (pulumi_json(args.stack, "stack", "export").get("deployment") or {}).get("resources") or []
        paths = kubeconfig_paths(target.get("kubeconfig"), os.environ, str(ROOT))
        reader = reader_for(paths, target.get("context"))
        report = verify(reader.get, resources, args.timeout, args.settle, args.edge_url)
    except (RuntimeError, ClusterUnreachableError) as error:
        print(f"verify: cannot verify stack '{args.stack}': {error}", file=sys.stderr)
        return 2
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
