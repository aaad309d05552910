"""Jobs run by the Kubernetes operator: its phase reports drive the job's state here, and a
cancel deletes the job's custom resource (the operator's finaliser tears the workload down)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.db.base import utcnow
from tailor.db.models import Job, JobEvent, JobState
from tailor.errors import ClusterUnavailable
from tailor.jobs import service as jobs
from tailor.jobs.usage import Usage
from tailor.k8s import FINETUNE_JOB, CustomKind, delete, describe, team_namespace
from tailor.tenancy import TeamAccess

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

# The custom resource each kind of job runs as on the cluster (named after the job).
WORKLOADS: dict[str, CustomKind] = {"finetune": FINETUNE_JOB}
Finish = Callable[[Session, Job], None]

Phase = Literal["Queued", "Suspended", "Running", "Succeeded", "Failed", "Cancelled"]


class UsageReport(BaseModel):
    """What a workload's pods used: their run times x the GPUs each was given."""

    model_config = ConfigDict(extra="forbid")
    gpu_type: str | None = Field(None, max_length=63)
    gpus: int = Field(0, ge=0, le=100_000)
    gpu_seconds: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    cpu_seconds: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    wall_seconds: float = Field(0.0, ge=0.0, allow_inf_nan=False)


class PhaseReport(BaseModel):
    """What the operator saw happen to a job's workload."""

    model_config = ConfigDict(extra="forbid")
    phase: Phase
    reason: str | None = Field(None, max_length=2000)
    conditions: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    usage: UsageReport | None = Field(
        None, description="With a final phase: the pods' usage so far (replaces the last)."
    )


def apply_phase(
    session: Session, job: Job, report: PhaseReport, finish: Finish | None = None
) -> Job:
    """Move the job to the state the reported phase stands for (final states stay final).

    `finish` ends a job whose workload succeeded (a fine-tune registers its adapter);
    without it the job just succeeds.
    """
    if job.state.final:
        return job
    if report.usage is not None:
        # The operator sums every pod of the workload each time: the newest report is the total.
        job.usage = Usage(**report.usage.model_dump()).as_dict()
    note = f"cluster: {report.phase}" + (f" ({report.reason})" if report.reason else "")
    # Reports are at-least-once: the same note again changes nothing and logs nothing.
    jobs.report(session, job, job.progress, note)
    if report.phase == "Running" and job.state == JobState.queued:
        job.state, job.started_at = JobState.running, utcnow()
    elif report.phase == "Succeeded":
        if finish is not None:
            finish(session, job)
        else:
            jobs.succeed(session, job, {})
    elif report.phase == "Failed":
        jobs.fail(session, job, failure_message(session, job, report.reason))
    elif report.phase == "Cancelled":
        jobs.mark_cancelled(session, job)
    return job


def failure_message(session: Session, job: Job, reason: str | None) -> str:
    """A failed cluster job's error: what its trainer said last, then the cluster's reason.

    The operator sees the workload's conditions only (`RetriesExhausted: Job has reached the
    specified backoff limit`); the trainer's own words come as its pods' `error` events,
    stored as error lines (`recorder.record`). Before a job ends, its error lines are those
    events alone: the job's own final line is written after this.
    """
    cluster = reason or "the workload failed; see the job's pod logs"
    said = session.scalar(
        select(JobEvent.message)
        .where(JobEvent.job_id == job.id, JobEvent.level == "error")
        .order_by(JobEvent.id.desc())
        .limit(1)
    )
    return f"{said} (cluster: {cluster})" if said else cluster


def delete_workload(job: Job, api: ApiClient, namespace: str) -> bool:
    """Delete a job's custom resource; False if there is none (never submitted, or gone).

    The resource is named after the job in the team's `namespace`, so it is found even
    when the worker created it but had not yet recorded `executor_ref`. The operator's
    finaliser deletes the workload and reports `Cancelled`, which finishes the job here.
    """
    kind = WORKLOADS.get(job.kind)
    if job.executor != "kubernetes" or kind is None:
        return False
    ns, name = (job.executor_ref or f"{namespace}/{job.uid}").split("/", 1)
    return delete(api, kind, ns, name)


def cancel_job(
    session: Session, settings: Settings, access: TeamAccess, job: Job, api: ApiClient | None
) -> Job:
    """Cancel a job from the API; for a cluster job, delete its workload first.

    The deletion happens inside the request's transaction: if the cluster cannot be
    reached the request fails with 503 and the job is unchanged (try again). Once the
    resource is deleted, the operator tears the workload down and reports `Cancelled`; a
    job with no resource (never submitted, or already gone) is cancelled at once.
    """
    repeated = job.cancel_requested
    job = jobs.request_cancel(session, access, job, settings.job_stale_after_s)
    if job.executor != "kubernetes" or job.state.final:
        return job
    if api is None:
        raise ClusterUnavailable(
            f"job {job.uid} runs on the cluster but this API has no Kubernetes credentials "
            "(in-cluster service account or KUBECONFIG) and TAILOR_EXECUTOR=kubernetes"
        )
    namespace = team_namespace(settings, access.team.slug)
    kind = WORKLOADS.get(job.kind, FINETUNE_JOB)
    try:
        deleted = delete_workload(job, api, namespace)
    except Exception as exc:  # ApiException, connection errors: the cluster's answer
        raise ClusterUnavailable(
            f"could not delete {kind.kind} {namespace}/{job.uid}: {describe(exc, kind)}; "
            "the job is unchanged, cancel it again"
        ) from exc
    if deleted and not repeated:
        jobs.log(session, job, f"deleted {kind.kind} {namespace}/{job.uid}; waiting for the "
                 "operator to stop its pods")  # fmt: skip
    elif not deleted:
        jobs.mark_cancelled(session, job)
    return job
