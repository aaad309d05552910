"""What a running pipeline reports through: short transactions, so the API sees it live."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from tailor.db.models import Job
from tailor.db.session import READ_ONLY
from tailor.jobs import service
from tailor.jobs.workers import this_worker


def metric_values(values: Mapping[str, Any]) -> tuple[int, dict[str, float]]:
    """The step and the numeric series of a `metrics` event (`step` is the x axis)."""
    step = int(values.get("step", 0))
    numeric = {
        k: float(v)
        for k, v in values.items()
        if k not in ("step", "event")
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)  # JSON and the charts have no NaN
    }
    return step, numeric


def record(session: Session, job: Job, kind: str, fields: Mapping[str, Any]) -> None:
    """One training event into the job's rows: the one mapping local and cluster runs share.

    `metrics` become metric points, `log` an event line, `progress` the job's progress (and
    a line at each new phase), `error` an error line: what the trainer said went wrong,
    which the operator's `Failed` report cannot know (`workloads.apply_phase` quotes it).
    No event ends the job: the executor's finish (local) or the operator's phase report
    (cluster) does.
    """
    if kind == "metrics":
        service.add_metrics(session, job, *metric_values(fields))
    elif kind == "log":
        service.log(session, job, str(fields.get("message", "")))
    elif kind == "progress":
        fraction = float(fields.get("fraction", 0.0))
        service.report(session, job, fraction, str(fields.get("message", "")))
    elif kind == "error":
        service.log(session, job, str(fields.get("message") or "training failed"), "error")


# Without a watch (a runner called directly), how often `cancelled()` asks the database.
CANCEL_POLL_S = 0.5


class JobRecorder:
    """Progress, logs, metrics and the cancel flag of one job, each in its own transaction.

    `stop` is the attempt's stop event (`tailor.jobs.attempt`): set, the job should stop.
    Without one, `cancelled()` asks the database itself.
    """

    def __init__(
        self, sessions: sessionmaker[Session], job_id: int, stop: threading.Event | None = None
    ) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.stop = stop
        self.worker = this_worker()
        self._asked_at = float("-inf")
        self._answer = False

    def _with_job(self, fn: Any, *args: Any) -> None:
        with self.sessions.begin() as session:
            job = session.get(Job, self.job_id)
            if job is not None:  # else deleted meanwhile: its watch stops the runner
                fn(session, job, *args)

    def progress(self, fraction: float, message: str = "") -> None:
        """The job is `fraction` done and doing `message`."""
        self._with_job(record, "progress", {"fraction": fraction, "message": message})

    def log(self, message: str, level: str = "info") -> None:
        """A line for the job's log (an info line is a `log` event, as a pod posts it)."""
        if level == "info":
            self._with_job(record, "log", {"message": message})
        else:
            self._with_job(service.log, message, level)

    def metrics(self, values: dict[str, Any]) -> None:
        """Metric points; `step` in `values` is the x axis, numeric values are series."""
        self._with_job(record, "metrics", values)

    def cancelled(self) -> bool:
        """Whether the job should stop; cheap enough to poll from a waiting loop."""
        if self.stop is not None:
            return self.stop.is_set()
        now = time.monotonic()
        if now - self._asked_at >= CANCEL_POLL_S:
            with self.sessions() as session:
                session.connection(execution_options={READ_ONLY: True})
                job = session.get(Job, self.job_id)
                self._answer = job is None or job.cancel_requested or job.state.final
            self._asked_at = now
        return self._answer

    def progress_unless_cancelled(self, fraction: float, message: str = "") -> bool:
        """Report progress unless the job should stop; whether it should."""
        if self.stop is not None and self.stop.is_set():
            return True
        with self.sessions.begin() as session:
            job = session.get(Job, self.job_id)
            if job is None or job.cancel_requested or job.state.final:
                return True
            service.report(session, job, fraction, message)
            return False

    def finish(self, action: Callable[[Session, Job], None]) -> bool:
        """End the job with `action(session, job)`, its row locked (see `lock_job`); whether it
        ran (not when the job is gone or another worker runs it now)."""
        with self.sessions.begin() as session:
            job = session.get(Job, self.job_id, with_for_update=True, populate_existing=True)
            if job is None or (job.worker is not None and job.worker != self.worker):
                return False
            action(session, job)
            return True
