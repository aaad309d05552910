"""The reaper: a running job whose worker is gone is queued again, failed or cancelled.

Brokers do not all give a dead worker's task back: kombu's SQLAlchemy transport (the
embedded default) never does, and Redis only after its visibility timeout. So every worker
looks, at start-up and every `job_reaper_interval_s`, for running jobs whose worker is gone
(`tailor.jobs.workers.is_alive`) and sends their task again — a repeated delivery is harmless,
the claim (`begin_attempt`) lets one through. A job whose workers kept dying fails after
`job_max_attempts`; one that was being cancelled ends cancelled.
"""

from __future__ import annotations

import logging
import threading

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.models import Job, JobState
from tailor.jobs import service
from tailor.jobs.workers import is_alive
from tailor.queue import TASKS, send_after_commit
from tailor.telemetry.retention import purge_expired

log = logging.getLogger("tailor.jobs.reaper")


def reap(session: Session, settings: Settings, sender: Celery) -> list[str]:
    """Deal with every running job whose worker is gone; the ids of the jobs it changed."""
    stmt = select(Job).where(Job.state == JobState.running, Job.executor == "local")
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)  # two reapers: each job to one of them
    changed = []
    for job in session.scalars(stmt).all():
        if is_alive(job.worker, job.heartbeat_at, settings.job_stale_after_s):
            continue
        _reap_one(session, settings, sender, job)
        changed.append(job.uid)
    return changed


def _reap_one(session: Session, settings: Settings, sender: Celery, job: Job) -> None:
    gone = f"its worker {job.worker} is gone" if job.worker else "its worker is unknown"
    if job.cancel_requested:
        service.log(session, job, f"{gone}; the cancel it was asked for ends it")
        service.mark_cancelled(session, job)
    elif job.attempts >= settings.job_max_attempts or job.kind not in TASKS:
        service.fail(
            session,
            job,
            f"gave up after {job.attempts} attempts: {gone}, and its worker died each time "
            "(out of memory or killed); check the worker's logs and resource limits",
        )
    else:
        service.log(
            session,
            job,
            f"{gone}; queued again for attempt {job.attempts + 1} of {settings.job_max_attempts}",
            level="warning",
        )
        job.state, job.worker, job.heartbeat_at = JobState.queued, None, None
        send_after_commit(session, sender, TASKS[job.kind], job.uid)


def reap_once(sessions: sessionmaker[Session], settings: Settings, sender: Celery) -> list[str]:
    """One pass in a transaction of its own; failures are logged (the next pass retries)."""
    try:
        with sessions.begin() as session:
            changed = reap(session, settings, sender)
    except Exception:
        log.exception("the reaper could not check the running jobs")
        return []
    if changed:
        log.warning("jobs whose worker was gone: %s", ", ".join(changed))
    return changed


def sweep_once(sessions: sessionmaker[Session], settings: Settings, sender: Celery) -> None:
    """The periodic sweep: reap, then delete completion telemetry past its retention."""
    reap_once(sessions, settings, sender)
    try:
        with sessions.begin() as session:
            purge_expired(session, settings.telemetry_retention_days)
    except Exception:  # the next sweep tries again; reaping must not stop for it
        log.exception("could not purge expired completion telemetry")


def start_reaper(
    sessions: sessionmaker[Session], settings: Settings, sender: Celery
) -> threading.Event:
    """Sweep now and then every `job_reaper_interval_s` in a thread; set the event to stop."""
    stop = threading.Event()

    def loop() -> None:
        sweep_once(sessions, settings, sender)
        while not stop.wait(settings.job_reaper_interval_s):
            sweep_once(sessions, settings, sender)

    threading.Thread(target=loop, name="tailor-reaper", daemon=True).start()
    return stop
