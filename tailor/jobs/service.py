"""Job life cycle: create, start, report, finish, cancel — each change logged as an event."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor import audit
from tailor.config import JOB_MAX_ATTEMPTS, JOB_STALE_AFTER_S
from tailor.db.base import utcnow
from tailor.db.models import Job, JobEvent, JobMetric, JobState
from tailor.errors import Conflict
from tailor.jobs.schemas import MetricPoint, MetricSeries
from tailor.jobs.workers import is_alive, this_worker
from tailor.pagination import paginate
from tailor.tenancy import TeamAccess, owned, team_select


def new_uid(prefix: str) -> str:
    """A short, unguessable public id such as `ds-1f2e3d4c5b6a`."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_job(
    session: Session, access: TeamAccess, kind: str, spec: dict[str, Any], executor: str = "local"
) -> Job:
    """A queued job of the caller's team."""
    job = Job(
        uid=new_uid(kind[:2]),
        team_id=access.team_id,
        kind=kind,
        spec=spec,
        executor=executor,
        created_by=access.principal.user_id,
    )
    session.add(job)
    session.flush()
    log(session, job, f"{kind} job queued")
    audit.record(
        session,
        access.principal,
        f"{kind}.start",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/jobs/{job.uid}",
    )
    return job


def log(session: Session, job: Job, message: str, level: str = "info") -> None:
    """Append a line to the job's event log."""
    session.add(JobEvent(job_id=job.id, level=level, message=message[:4000]))


def begin_attempt(
    session: Session,
    job: Job,
    *,
    worker: str | None = None,
    max_attempts: int = JOB_MAX_ATTEMPTS,
    stale_after_s: float = JOB_STALE_AFTER_S,
) -> bool:
    """Claim the job for a new attempt by `worker` (this process); whether it may run now.

    Deliveries are at least once, so a delivery does nothing for a job that has finished or
    that a live worker runs; a job whose workers kept dying fails after `max_attempts`. The
    row is locked: two deliveries at once claim it once.
    """
    worker = worker or this_worker()
    job = lock_job(session, job.id)
    if job.state.final:
        return False
    if job.state == JobState.running:
        if job.worker == worker:
            return True  # claimed by this process a moment ago (the worker's task wrapper)
        if is_alive(job.worker, job.heartbeat_at, stale_after_s):
            log(session, job, f"a repeated delivery was ignored: {job.worker} runs this job")
            return False
    if job.cancel_requested:  # asked while its last worker was dying: nothing runs again
        mark_cancelled(session, job)
        return False
    job.attempts += 1
    if job.attempts > max_attempts:
        job.attempts = max_attempts
        fail(
            session,
            job,
            f"gave up after {max_attempts} attempts: the worker died each time "
            "(out of memory or killed); check the worker's logs and resource limits",
        )
        return False
    job.state = JobState.running
    job.started_at = job.started_at or utcnow()
    job.worker, job.heartbeat_at = worker, utcnow()
    log(session, job, f"attempt {job.attempts} started on {worker}")
    return True


def owns(job: Job, worker: str) -> bool:
    """Whether `worker` runs the job's current attempt."""
    return job.state == JobState.running and job.worker == worker


def report(session: Session, job: Job, progress: float, message: str) -> None:
    """Record progress (0..1) and what the job is doing now.

    The event log gets a line when the job enters a new phase, not for every count within
    one ("step 7 of 900", "FIM task 12/200" update the message only).
    """
    job.progress = max(0.0, min(1.0, progress))
    if message and message != job.message:
        new_phase = _shape(message) != _shape(job.message or "")
        job.message = message[:500]
        if new_phase:
            log(session, job, message)


def _shape(message: str) -> str:
    return re.sub(r"[0-9.]+", "#", message)


def add_metrics(session: Session, job: Job, step: int, values: dict[str, float]) -> None:
    """Append metric points at `step`."""
    session.add_all(
        JobMetric(job_id=job.id, step=step, name=k, value=float(v)) for k, v in values.items()
    )


def lock_job(session: Session, job_id: int) -> Job:
    """The job as stored now, its row locked until the transaction ends.

    A worker finishing a job and a person cancelling it both read the job, then write: the
    lock puts one after the other, so a cancel either reaches the worker's last check or finds
    the job already finished, never both missing each other.
    """
    return session.get_one(Job, job_id, with_for_update=True, populate_existing=True)


def succeed(session: Session, job: Job, result: dict[str, Any]) -> None:
    """Finish successfully with a result."""
    _finish(session, job, JobState.succeeded, result=result)


def fail(session: Session, job: Job, error: str) -> None:
    """Finish with an error a person can act on."""
    _finish(session, job, JobState.failed, error=error)


def mark_cancelled(session: Session, job: Job) -> None:
    """Finish as cancelled (after the executor has stopped and cleaned up)."""
    _finish(session, job, JobState.cancelled)


def _finish(
    session: Session,
    job: Job,
    state: JobState,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    if job.state.final:
        return
    job.state, job.finished_at = state, utcnow()
    if result is not None:
        job.result = result
        job.progress = 1.0
    if error is not None:
        job.error = error[:4000]
    log(
        session,
        job,
        f"job {state.value}" + (f": {error}" if error else ""),
        level="error" if error else "info",
    )


def request_cancel(
    session: Session, access: TeamAccess, job: Job, stale_after_s: float = JOB_STALE_AFTER_S
) -> Job:
    """End the job now if nothing runs it; else ask its worker to stop; no-op once final.

    A queued job, or a running one whose worker is gone (killed, its machine lost), ends
    `cancelled` at once. A live worker stops at its next check, or is interrupted (see
    `tailor.jobs.attempt`). A cluster job is never finished here: its FineTuneJob may exist
    even while queued (Kueue holds it), so `tailor.services.finetunes.submit.cancel_job` deletes it
    and the operator's `Cancelled` report (or the resource's absence) finishes the job.
    """
    job = lock_job(session, job.id)
    if job.executor == "kubernetes" and not job.state.final:
        if not job.cancel_requested:
            job.cancel_requested = True
            log(session, job, "cancellation requested")
    elif job.state == JobState.queued:
        mark_cancelled(session, job)
    elif job.state == JobState.running and not is_alive(
        job.worker, job.heartbeat_at, stale_after_s
    ):
        job.cancel_requested = True
        log(session, job, f"cancelled while its worker was gone ({job.worker or 'unknown'})")
        mark_cancelled(session, job)
    elif job.state == JobState.running and not job.cancel_requested:
        job.cancel_requested = True
        log(session, job, "cancellation requested")
    audit.record(
        session,
        access.principal,
        f"{job.kind}.cancel",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/jobs/{job.uid}",
    )
    return job


def get_job(session: Session, access: TeamAccess, uid: str) -> Job:
    """One job of the caller's team, or 404."""
    return owned(session, Job, access, "job", uid=uid)


def list_jobs(
    session: Session, access: TeamAccess, cursor: str | None, limit: int, kind: str | None = None
) -> tuple[Sequence[Job], str | None]:
    """The team's jobs, oldest first."""
    stmt = team_select(Job, access)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    return paginate(session, stmt, Job.id, cursor, limit)


def events(session: Session, job: Job, after: int = 0) -> Sequence[JobEvent]:
    """The job's event log after event id `after` (for tailing)."""
    return session.scalars(
        select(JobEvent)
        .where(JobEvent.job_id == job.id, JobEvent.id > after)
        .order_by(JobEvent.id)
        .limit(1000)
    ).all()


def metric_series(session: Session, job: Job) -> MetricSeries:
    """All of the job's metrics, grouped by name and ordered by step."""
    rows = session.scalars(
        select(JobMetric)
        .where(JobMetric.job_id == job.id)
        .order_by(JobMetric.name, JobMetric.step, JobMetric.id)
    ).all()
    series: dict[str, list[MetricPoint]] = {}
    for row in rows:
        series.setdefault(row.name, []).append(MetricPoint(step=row.step, value=row.value))
    return MetricSeries(series=series)


def ensure_not_running(job: Job, what: str) -> None:
    """Refuse to remove something whose job is still working on it."""
    if not job.state.final:
        raise Conflict(f"{what} is still {job.state.value}: cancel job {job.uid} first")


def create_system_job(session: Session, team_id: int, kind: str, spec: dict[str, Any]) -> Job:
    """A queued job the platform starts itself (e.g. the evaluation after a fine-tune)."""
    job = Job(uid=new_uid(kind[:2]), team_id=team_id, kind=kind, spec=spec)
    session.add(job)
    session.flush()
    log(session, job, f"{kind} job queued by the platform")
    return job
