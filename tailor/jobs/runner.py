"""The skeleton every job runner shares: begin the attempt, read what the stage needs, run it,
and end the job under its row lock (cancelled, failed, or finished by the stage).

A runner describes its stage (`Stage`) and calls `run_job`; the skeleton owns the order of
the transactions and what a cancel or a failure does to the job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.db.models import Job
from tailor.errors import TailorError
from tailor.jobs import service as jobs
from tailor.jobs.recorder import JobRecorder
from tailor.jobs.usage import Stopwatch, Usage, add_usage, local_usage

T = TypeVar("T")  # what the stage reads from the database at its start
R = TypeVar("R")  # what the stage's work produced
Finish = Callable[[Session, Job], None]


def _keep(*_: Any) -> None:
    pass


def _no_gpu(*_: Any) -> tuple[str | None, int]:
    return None, 0


@dataclass
class Stage(Generic[T, R]):
    """One kind of job, as the skeleton runs it."""

    # In the attempt's first transaction: what the work needs (a TailorError fails the job).
    read: Callable[[Session, Job], T]
    # Outside any transaction, reporting through the recorder.
    work: Callable[[T, JobRecorder], R]
    # Under the row lock, when nobody asked to cancel: succeed (or fail) the job.
    finish: Callable[[Session, Job, T, R], None]
    # Raised by `work` when it stopped on request: the job ends cancelled.
    cancelled: tuple[type[BaseException], ...] = ()
    # Failures a person can act on: the job fails with `reason(exc)`. Anything else
    # propagates (the attempt fails the job without quoting it, see `tailor.jobs.attempt`).
    expected: tuple[type[Exception], ...] = ()
    reason: Callable[[Exception], str] = str
    # Removes what a cancelled job left behind (`R` is None when the work itself stopped).
    discard: Callable[[T, R | None], None] = field(default=_keep)
    # Claims the job for this attempt; False: somebody else runs it, or it is over.
    begin: Callable[[Session, Job], bool] = jobs.begin_attempt
    # The GPU type and count the work runs on here ((None, 0): the CPU only), priced as
    # held for the whole attempt (`tailor.jobs.usage`).
    devices: Callable[[T], tuple[str | None, int]] = field(default=_no_gpu)


def run_job(
    sessions: sessionmaker[Session],
    job_uid: str,
    stage: Stage[T, R],
    stop: threading.Event | None = None,
) -> None:
    """Run (or, after a crash, re-run) job `job_uid` to a final state.

    `stop` is the attempt's stop event (`tailor.jobs.attempt`); without one the recorder
    asks the database whether the job was cancelled.
    """
    with sessions.begin() as session:
        job = session.scalars(select(Job).where(Job.uid == job_uid)).one_or_none()
        if job is None or not stage.begin(session, job):
            return
        try:
            snapshot = stage.read(session, job)
        except TailorError as exc:
            jobs.fail(session, job, exc.detail)
            return
        job_id = job.id
    recorder = JobRecorder(sessions, job_id, stop)
    gpu_type, gpus = stage.devices(snapshot)
    watch = Stopwatch.start()

    def used() -> Usage:
        return local_usage(*watch.read(), gpu_type, gpus)

    try:
        result = stage.work(snapshot, recorder)
    except stage.cancelled:
        usage = used()
        if recorder.finish(_recorded(usage, jobs.mark_cancelled)):  # not when another has it
            stage.discard(snapshot, None)
        return
    except stage.expected as exc:
        _fail(recorder, stage.reason(exc), used())
        return
    usage = used()
    try:
        with sessions.begin() as session:
            job = jobs.lock_job(session, job_id)
            record_usage(job, usage)
            if job.cancel_requested:  # asked after the work's last check: its output goes
                stage.discard(snapshot, result)
                jobs.mark_cancelled(session, job)
            else:
                stage.finish(session, job, snapshot, result)
    except stage.expected as exc:
        _fail(recorder, stage.reason(exc), usage)


def record_usage(job: Job, usage: Usage) -> None:
    """Add one attempt's usage to the job's (before it ends, in the same transaction)."""
    job.usage = add_usage(job.usage, usage)


def _recorded(usage: Usage, action: Finish) -> Finish:
    def act(session: Session, job: Job) -> None:
        record_usage(job, usage)
        action(session, job)

    return act


def _fail(recorder: JobRecorder, reason: str, usage: Usage) -> None:
    recorder.finish(_recorded(usage, lambda session, job: jobs.fail(session, job, reason)))
