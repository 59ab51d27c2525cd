"""How long `pulumi up` waits for a Deployment's rollout before it fails (and a deploy rolls back).

The provider waits 10 minutes by default, whatever the workload. A pod that is not ready when its
startup probe gives up never will be (the kubelet restarts it, and the next try has the same budget),
and the rollout is one pod at a time (maxSurge 1, maxUnavailable 0): so the bound is, per pod, the
startup and readiness probes' budgets plus time to schedule and pull, times the most pods the rollout
may replace (the autoscaler's maximum, else the replicas). A release that cannot become ready then
fails its update in that time instead of an arbitrary one, and the deploy rolls back sooner.
"""

from __future__ import annotations

import pulumi

from components.config import ProbeSettings, ServiceSettings

# Scheduling, image pull and container start of one pod, beyond what its probes allow.
START_ALLOWANCE_SECONDS = 120


def probe_budget(probe: ProbeSettings) -> int:
    return probe.initial_delay_seconds + probe.period_seconds * probe.failure_threshold


def rollout_timeout_seconds(svc: ServiceSettings) -> int:
    pods = svc.autoscaling.max_replicas if svc.autoscaling.enabled and svc.autoscaling.max_replicas else svc.replicas
    per_pod = START_ALLOWANCE_SECONDS + probe_budget(svc.probes.startup) + probe_budget(svc.probes.readiness)
    return pods * per_pod


def rollout_timeouts(svc: ServiceSettings) -> pulumi.CustomTimeouts:
    bound = f"{rollout_timeout_seconds(svc)}s"
    return pulumi.CustomTimeouts(create=bound, update=bound)
