"""What the workloads' status means for Tailor's resources (pure decisions, no cluster).

A batch/v1 Job's or a JobSet's status becomes a FineTuneJob phase, reason and conditions; a
Deployment's status becomes an InferenceEndpoint phase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tailor.stages.train.protocol import EXIT_SPEC_ERROR

TERMINAL = {"Succeeded", "Failed", "Cancelled"}


def now() -> str:
    """The current time as Kubernetes writes it (RFC 3339, seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_Value = tuple[bool, str, str | None]  # condition status, reason, message


@dataclass(frozen=True)
class Observed:
    """A phase with its reason, message and the condition values behind it."""

    phase: str
    reason: str
    message: str | None = None
    conditions: dict[str, _Value] = field(default_factory=dict)
    start_time: str | None = None
    completion_time: str | None = None


def _true_conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return {c["type"]: c for c in conditions if c.get("status") == "True"}


def failure_reason(condition: dict[str, Any]) -> str:
    """A reason a person can act on for a Job's Failed condition."""
    reason = condition.get("reason") or "Failed"
    message = condition.get("message") or ""
    if reason == "PodFailurePolicy" and re.search(rf"exit code {EXIT_SPEC_ERROR}\b", message):
        return "InvalidSpec"
    return {"BackoffLimitExceeded": "RetriesExhausted"}.get(reason, reason)


def jobset_failure_reason(condition: dict[str, Any]) -> str:
    """A reason a person can act on for a JobSet's Failed condition.

    The only FailJobSet rule Tailor sets is the spec error (exit code 3); running out of
    restarts is the gang's RetriesExhausted.
    """
    reason = condition.get("reason") or "Failed"
    return {
        "FailJobSetFailurePolicyAction": "InvalidSpec",
        "ReachedMaxRestarts": "RetriesExhausted",
    }.get(reason, reason)


def observe_job(job: dict[str, Any], user_suspended: bool, queued_by_kueue: bool) -> Observed:
    """The FineTuneJob phase a Job's status stands for."""
    status = job.get("status") or {}
    true = _true_conditions(job)
    times = {"start_time": status.get("startTime"), "completion_time": status.get("completionTime")}
    if "Complete" in true:
        return _finetune("Succeeded", "Completed", "Training finished.", **times)
    if "Failed" in true:
        cond = true["Failed"]
        return _finetune("Failed", failure_reason(cond), cond.get("message"), **times)
    active = int(status.get("active") or status.get("ready") or 0)
    running = f"{active} pod(s) active." if active else None
    return _pending_or_running(job, true, user_suspended, queued_by_kueue, running, times)


def observe_jobset(jobset: dict[str, Any], user_suspended: bool, queued_by_kueue: bool) -> Observed:
    """The FineTuneJob phase a JobSet's status stands for (the gang as one job)."""
    status = jobset.get("status") or {}
    true = _true_conditions(jobset)
    times: dict[str, str | None] = {"start_time": None, "completion_time": None}
    if "Completed" in true:
        return _finetune("Succeeded", "Completed", "Training finished on every node.")
    if "Failed" in true:
        cond = true["Failed"]
        return _finetune("Failed", jobset_failure_reason(cond), cond.get("message"))
    replicated = status.get("replicatedJobsStatus") or []
    active = sum(int(r.get("active") or 0) for r in replicated)
    nodes = sum(int(r.get("replicas") or 0) for r in jobset["spec"].get("replicatedJobs") or [])
    restarts = int(status.get("restarts") or 0)
    running = f"{active}/{nodes} node(s) active; {restarts} gang restart(s)." if active else None
    return _pending_or_running(jobset, true, user_suspended, queued_by_kueue, running, times)


def _pending_or_running(
    workload: dict[str, Any],
    true: dict[str, dict[str, Any]],
    user_suspended: bool,
    queued_by_kueue: bool,
    running: str | None,
    times: dict[str, str | None],
) -> Observed:
    suspended = bool((workload.get("spec") or {}).get("suspend")) or "Suspended" in true
    if suspended and user_suspended:
        return _finetune("Suspended", "SuspendedByUser", "Suspended on request.", **times)
    if suspended:
        why = "Waiting for the team's GPU quota (Kueue)." if queued_by_kueue else None
        return _finetune("Queued", "WaitingForQuota" if queued_by_kueue else "Pending", why)
    if running:
        return _finetune("Running", "Running", running, **times)
    return _finetune("Queued", "Admitted", "Admitted; pods are starting.", **times)


def _finetune(
    phase: str,
    reason: str,
    message: str | None,
    start_time: str | None = None,
    completion_time: str | None = None,
) -> Observed:
    admitted = phase not in ("Queued", "Suspended") or reason == "Admitted"

    def condition(active: bool, otherwise: str, text: str | None = None) -> _Value:
        return (active, reason if active else otherwise, text if active else None)

    values = {
        "Admitted": (admitted, "Admitted" if admitted else reason, None),
        "Suspended": condition(phase == "Suspended", "NotSuspended"),
        "Running": condition(phase == "Running", "NotRunning"),
        "Succeeded": condition(phase == "Succeeded", "NotSucceeded"),
        "Failed": condition(phase == "Failed", "NotFailed", message),
    }
    return Observed(phase, reason, message, values, start_time, completion_time)


def merge_conditions(
    previous: list[dict[str, Any]], observed: dict[str, _Value], at: str
) -> list[dict[str, Any]]:
    """Kubernetes conditions, keeping lastTransitionTime where the status did not change."""
    before = {c.get("type"): c for c in previous or []}
    result = []
    for type_, (value, reason, message) in observed.items():
        status = "True" if value else "False"
        old = before.get(type_)
        since = old["lastTransitionTime"] if old and old.get("status") == status else at
        condition = {"type": type_, "status": status, "reason": reason, "lastTransitionTime": since}
        if message:
            condition["message"] = message
        result.append(condition)
    return result


def finetune_status(
    observed: Observed, previous: dict[str, Any], job_name: str, at: str
) -> dict[str, Any]:
    """The FineTuneJob status for an observation (previous status keeps transition times)."""
    status: dict[str, Any] = {
        "phase": observed.phase,
        "reason": observed.reason,
        "message": observed.message,
        "jobName": job_name,
        "conditions": merge_conditions(previous.get("conditions") or [], observed.conditions, at),
    }
    if observed.start_time:
        status["startTime"] = observed.start_time
    if observed.completion_time:
        status["completionTime"] = observed.completion_time
    return status


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _cpu(quantity: str | int | float | None) -> float:
    """CPU cores of a Kubernetes quantity ("8", "500m", 2)."""
    if quantity is None:
        return 0.0
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _pod_end(pod: dict[str, Any]) -> datetime | None:
    """When a pod's containers stopped (the last one); None while one still runs."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    ends = [_time((s.get("state") or {}).get("terminated", {}).get("finishedAt")) for s in statuses]
    if not statuses or any(e is None for e in ends):
        return None
    return max(e for e in ends if e is not None)


def _requested(spec: dict[str, Any], gpu_resource: str) -> tuple[int, float]:
    """(GPUs, CPU cores) a pod's containers asked for (GPU limits, CPU requests)."""
    gpus, cpu = 0, 0.0
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {}
        gpus += int((resources.get("limits") or {}).get(gpu_resource) or 0)
        cpu += _cpu((resources.get("requests") or {}).get("cpu"))
    return gpus, cpu


def workload_usage(
    pods: list[dict[str, Any]],
    job: dict[str, Any],
    gpu_resource: str,
    gpu_type: str,
    at: datetime,
) -> dict[str, Any]:
    """What a training workload used: each pod's run (start to its containers' end, or `at`
    while it runs) times the GPUs it was given; CPU-seconds are its CPU request over that time
    (reserved, not measured: pods report no CPU time to the API server).

    Pods can be gone (the Job's TTL, a node lost): with none left, the Job's own start and
    completion times x its pod template's GPUs x its completions stand in.
    """
    runs: list[tuple[float, int, float]] = []  # (seconds, GPUs, CPU cores)
    for pod in pods:
        start = _time((pod.get("status") or {}).get("startTime"))
        if start is None:
            continue  # never scheduled: nothing ran
        end = _pod_end(pod) or at
        gpus, cpu = _requested(pod.get("spec") or {}, gpu_resource)
        runs.append((max(0.0, (end - start).total_seconds()), gpus, cpu))
    if not runs:
        status = job.get("status") or {}
        start = _time(status.get("startTime"))
        if start is not None:
            end = _time(status.get("completionTime")) or at
            template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
            gpus, cpu = _requested(template, gpu_resource)
            pods_n = int((job.get("spec") or {}).get("completions") or 1)
            runs = [(max(0.0, (end - start).total_seconds()), gpus, cpu)] * pods_n
    gpus_total = sum(g for _, g, _ in runs)
    return {
        "gpu_type": gpu_type if gpus_total else None,
        "gpus": gpus_total,
        "gpu_seconds": round(sum(s * g for s, g, _ in runs), 3),
        "cpu_seconds": round(sum(s * c for s, _, c in runs), 3),
        "wall_seconds": round(max((s for s, _, _ in runs), default=0.0), 3),
    }


def changed(previous: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a status differs in anything but the bookkeeping fields."""
    keys = set(new) - {"reportedPhase"}
    return any(previous.get(k) != new.get(k) for k in keys)


def failed_status(reason: str, message: str, at: str) -> dict[str, Any]:
    """A FineTuneJob that never got a Job (invalid spec, unknown GPU type)."""
    observed = _finetune("Failed", reason, message)
    return {
        "phase": "Failed",
        "reason": reason,
        "message": message,
        "conditions": merge_conditions([], observed.conditions, at),
    }


def observe_deployment(deployment: dict[str, Any], wanted: int) -> Observed:
    """The InferenceEndpoint phase a Deployment's status stands for."""
    status = deployment.get("status") or {}
    conditions = status.get("conditions") or []
    stalled = [
        c for c in conditions
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
    ]  # fmt: skip
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    generation = (deployment.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if stalled:
        return Observed("Failed", "ProgressDeadlineExceeded", stalled[0].get("message"))
    if generation is not None and (observed is None or observed < generation):
        return Observed("Progressing", "Rollout", "The new pod template is being rolled out.")
    if wanted == 0:
        return Observed("Ready", "ScaledToZero", "No replicas requested.")
    if ready >= wanted and updated >= wanted:
        return Observed("Ready", "ModelLoaded", f"{ready}/{wanted} replicas ready.")
    return Observed("Progressing", "Rollout", f"{ready}/{wanted} replicas ready.")


def endpoint_status(
    observed: Observed, previous: dict[str, Any], deployment: dict[str, Any], at: str
) -> dict[str, Any]:
    """The InferenceEndpoint status for a Deployment observation."""
    status = deployment.get("status") or {}
    ready = observed.phase == "Ready"
    values = {
        "Ready": (ready, observed.reason, observed.message),
        "Progressing": (observed.phase == "Progressing", observed.reason, None),
    }
    return {
        "phase": observed.phase,
        "reason": observed.reason,
        "message": observed.message,
        "replicas": int((deployment.get("spec") or {}).get("replicas") or 0),
        "readyReplicas": int(status.get("readyReplicas") or 0),
        "conditions": merge_conditions(previous.get("conditions") or [], values, at),
    }
