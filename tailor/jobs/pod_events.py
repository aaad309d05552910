"""Events a cluster job's pods send to the API: checked against the job's token, then stored
through the same mapping as a local run's (`recorder.record`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db.models import Job
from tailor.errors import Conflict, NotFound, Unauthorized
from tailor.jobs.recorder import record
from tailor.jobs.schemas import EventBatch
from tailor.security import job_token, token_matches


def job_for_token(session: Session, key: str | None, job_uid: str, token: str) -> Job:
    """The job `token` may write.

    One answer (404) for an unknown job, a job run locally and a token that is not this
    job's (another job's included), so a token tells nothing about other jobs; a finished
    job's token writes nothing more (409). The row is locked: a finish reported at the same
    moment comes before or after the batch, never in the middle of it.
    """
    if not key:
        raise Unauthorized("this API has no job-token key (TAILOR_JOB_TOKEN_KEY): cluster "
                           "pods cannot report events")  # fmt: skip
    not_found = NotFound(f"job {job_uid} not found")
    if not token_matches(token, job_token(key, job_uid)):
        raise not_found
    job = session.scalar(select(Job).where(Job.uid == job_uid).with_for_update())
    if job is None or job.executor != "kubernetes":
        raise not_found
    if job.state.final:
        raise Conflict(f"job {job_uid} has {job.state.value}: its token writes no more events")
    return job


def record_events(session: Session, job: Job, batch: EventBatch) -> int:
    """Store a pod's events in order, as a local run's relay would; how many."""
    for event in batch.events:
        record(session, job, event.event, event.model_dump(exclude={"event"}))
    return len(batch.events)
