"""Jobs run by the Kubernetes operator: its phase reports drive the job's state here."""

from __future__ import annotations

from typing import Any, Literal

from celery import Celery
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from tailor.db.base import utcnow
from tailor.db.models import Job, JobState, Team
from tailor.finetunes.run import register_trained
from tailor.jobs import service as jobs
from tailor.storage import ObjectStore

Phase = Literal["Queued", "Suspended", "Running", "Succeeded", "Failed", "Cancelled"]


class PhaseReport(BaseModel):
    """What the operator saw happen to a job's workload."""

    model_config = ConfigDict(extra="forbid")
    phase: Phase
    reason: str | None = Field(None, max_length=2000)
    conditions: list[dict[str, Any]] = Field(default_factory=list, max_length=50)


def apply_phase(
    session: Session,
    store: ObjectStore,
    job: Job,
    report: PhaseReport,
    sender: Celery | None = None,
) -> Job:
    """Move the job to the state the reported phase stands for (final states stay final)."""
    if job.state.final:
        return job
    note = f"cluster: {report.phase}" + (f" ({report.reason})" if report.reason else "")
    # Reports are at-least-once: the same note again changes nothing and logs nothing.
    jobs.report(session, job, job.progress, note)
    if report.phase == "Running" and job.state == JobState.queued:
        job.state, job.started_at = JobState.running, utcnow()
    elif report.phase == "Succeeded":
        if job.kind == "finetune":
            slug = session.get_one(Team, job.team_id).slug
            register_trained(session, store, job, slug, {}, sender)
        else:
            jobs.succeed(session, job, {})
    elif report.phase == "Failed":
        jobs.fail(session, job, report.reason or "the workload failed; see the job's pod logs")
    elif report.phase == "Cancelled":
        jobs.mark_cancelled(session, job)
    return job
