"""What a running pipeline reports through: short transactions, so the API sees it live."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.db.models import Job
from tailor.jobs import service


class JobRecorder:
    """Progress, logs, metrics and the cancel flag of one job, each in its own transaction."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int) -> None:
        self.sessions = sessions
        self.job_id = job_id

    def _with_job(self, fn: Any, *args: Any) -> None:
        with self.sessions.begin() as session:
            fn(session, session.get_one(Job, self.job_id), *args)

    def progress(self, fraction: float, message: str = "") -> None:
        """The job is `fraction` done and doing `message`."""
        self._with_job(service.report, fraction, message)

    def log(self, message: str, level: str = "info") -> None:
        """A line for the job's log."""
        self._with_job(service.log, message, level)

    def metrics(self, values: dict[str, Any]) -> None:
        """Metric points; `step` in `values` is the x axis, numeric values are series."""
        step = int(values.get("step", 0))
        numeric = {
            k: float(v)
            for k, v in values.items()
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
        }
        self._with_job(service.add_metrics, step, numeric)

    def cancelled(self) -> bool:
        """Whether someone asked the job to stop."""
        with self.sessions() as session:
            return bool(session.get_one(Job, self.job_id).cancel_requested)

    def progress_unless_cancelled(self, fraction: float, message: str = "") -> bool:
        """Report progress unless someone asked the job to stop; whether they did."""
        with self.sessions.begin() as session:
            job = session.get_one(Job, self.job_id)
            if job.cancel_requested:
                return True
            service.report(session, job, fraction, message)
            return False

    def finish(self, action: Callable[[Session, Job], None]) -> None:
        """End the job with `action(session, job)`, the job's row locked (see `lock_job`)."""
        with self.sessions.begin() as session:
            action(session, service.lock_job(session, self.job_id))


@contextmanager
def failing_on_crash(sessions: sessionmaker[Session], job_uid: str) -> Iterator[None]:
    """Fail the job if its runner raises unexpectedly, then re-raise for the worker's log.

    Only the exception's type reaches the job: its message may quote a URL or a credential.
    """
    try:
        yield
    except Exception as exc:
        with sessions.begin() as session:
            job = session.scalars(select(Job).where(Job.uid == job_uid)).one_or_none()
            if job is not None:
                service.fail(
                    session,
                    job,
                    f"internal error ({type(exc).__name__}); the worker's log has the details",
                )
        raise
