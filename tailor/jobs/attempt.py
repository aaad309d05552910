"""One worker's attempt at a job, from claim to a final state, whatever happens on the way.

A task delivery claims its job (`begin_attempt`: a finished job, or one a live worker runs,
is left alone), then runs the job's runner with a watch beside it. The watch

- records a heartbeat, so that a worker that died is noticed (`tailor.jobs.reaper`);
- sees a cancel request within `job_cancel_poll_s` and sets the attempt's stop event, which
  the runner's checks read (`JobRecorder.cancelled`) — cheaply, so a long call such as a
  git fetch can poll it;
- ends the job `cancelled` and interrupts the runner when it has not stopped by itself within
  `job_cancel_grace_s` (stuck in a long call), and has the process replaced after twice that;
- interrupts the runner at once if the job stopped being this worker's (deleted, or requeued
  while this worker could not record its heartbeat), and stops it at its next check if
  someone else ended the job;
- interrupts the runner at its time limit (as Celery's soft limit does: see below).

An interruption is `JobInterrupted`, raised in the runner's thread by SIGUSR1 — the signal
Celery's prefork pool sends at a task's soft time limit, so the time limit and a cancel take
the same path: the runner unwinds (its `finally` blocks stop subprocesses, its handlers remove
partial output) and the attempt ends the job with a reason. It derives from BaseException so
that a runner's `except Exception` cannot mistake it for a failure of its own.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.base import utcnow
from tailor.db.models import Job, JobState
from tailor.db.session import READ_ONLY
from tailor.jobs import service
from tailor.jobs.workers import this_worker
from tailor.storage import ObjectStore

log = logging.getLogger("tailor.jobs")

StopReason = Literal["cancelled", "time-limit", "lost"]
Runner = Callable[[threading.Event], None]


class JobInterrupted(BaseException):
    """Raised in a runner's thread to stop it now; `reason` says why."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason)
        self.reason: StopReason = reason


@dataclass(frozen=True)
class Policy:
    """How an attempt is watched and how long it may take (from the settings)."""

    poll_s: float
    heartbeat_s: float
    cancel_grace_s: float
    stale_after_s: float
    max_attempts: int
    time_limit_s: int
    hard_limit_s: int

    @classmethod
    def of(cls, settings: Settings, kind: str) -> Policy:
        """The policy for a job of `kind`."""
        limit = settings.time_limit_s(kind)
        return cls(
            poll_s=settings.job_cancel_poll_s,
            heartbeat_s=settings.job_heartbeat_s,
            cancel_grace_s=settings.job_cancel_grace_s,
            stale_after_s=settings.job_stale_after_s,
            max_attempts=settings.job_max_attempts,
            time_limit_s=limit,
            hard_limit_s=limit + settings.time_limit_grace_s,
        )


def run_attempt(
    sessions: sessionmaker[Session],
    job_uid: str,
    kind: str,
    policy: Policy,
    runner: Runner,
    *,
    terminate: Callable[[], None] | None = None,
) -> None:
    """Claim job `job_uid` and run `runner(stop)` to a final state (see the module docstring).

    `terminate` replaces this process when an interrupted runner still does not return (the
    worker passes one that kills its pool process; none is used elsewhere).
    """
    worker = this_worker()
    claim = _claim(sessions, job_uid, worker, policy)
    if claim is None:
        return
    job_id, local = claim
    if not local:  # the cluster runs it: the task only submits, the operator reports
        try:
            runner(threading.Event())
        except Exception as exc:
            _fail(sessions, job_id, None, _crash_reason(exc))
            raise
        return
    watch = Watch(sessions, job_id, worker, policy, terminate=terminate)
    with watch.running(), _interruptible(watch) as interruptible:
        try:
            with interruptible.arming():
                runner(watch.stop)
        except JobInterrupted as exc:
            _end_interrupted(sessions, job_id, worker, kind, exc.reason, policy)
            return
        except Exception as exc:
            _fail(sessions, job_id, worker, _crash_reason(exc))
            raise
    _fail(sessions, job_id, worker, "the job's runner returned without a result (a bug)")


def _claim(
    sessions: sessionmaker[Session], job_uid: str, worker: str, policy: Policy
) -> tuple[int, bool] | None:
    """(job id, whether it runs here) when the delivery should run; None when it should not."""
    with sessions.begin() as session:
        job = session.scalars(select(Job).where(Job.uid == job_uid)).one_or_none()
        if job is None:
            log.info("job %s no longer exists (its team or dataset was deleted)", job_uid)
            return None
        if job.executor != "local":
            return (job.id, False) if not job.state.final else None
        claimed = service.begin_attempt(
            session,
            job,
            worker=worker,
            max_attempts=policy.max_attempts,
            stale_after_s=policy.stale_after_s,
        )
        return (job.id, True) if claimed else None


def _crash_reason(exc: Exception) -> str:
    # Only the exception's type: its message may quote a URL or a credential.
    return f"internal error ({type(exc).__name__}); the worker's log has the details"


def _fail(sessions: sessionmaker[Session], job_id: int, worker: str | None, reason: str) -> None:
    """Fail the job if this attempt still holds it (nothing when it ended or moved on); with
    no worker (a job the cluster runs), unless it has ended."""
    with sessions.begin() as session:
        job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
        if job is not None and (worker is None or service.owns(job, worker)):
            service.fail(session, job, reason)


def _end_interrupted(
    sessions: sessionmaker[Session],
    job_id: int,
    worker: str,
    kind: str,
    reason: StopReason,
    policy: Policy,
) -> None:
    with sessions.begin() as session:
        job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
        if job is None or not service.owns(job, worker):
            return  # ended or requeued by someone else: theirs now
        if job.cancel_requested:
            service.mark_cancelled(session, job)
        else:
            service.fail(session, job, time_limit_reason(kind, policy.time_limit_s))


def time_limit_reason(kind: str, limit_s: int, hard_limit_s: int | None = None) -> str:
    """Why a job stopped at its time limit (or was killed at the hard one), and what to do."""
    if hard_limit_s is None:
        what = f"stopped at its time limit of {_duration(limit_s)}"
    else:
        what = (
            f"was killed at its hard time limit of {_duration(hard_limit_s)} (it did not "
            f"stop at its time limit of {_duration(limit_s)})"
        )
    return (
        f"the {kind} {what}; split the work (fewer repositories, steps or tasks) or raise "
        f"the limit: TAILOR_TIME_LIMITS_S='{{\"{kind}\": {limit_s * 2}}}'"
    )


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    parts.append(f"{secs} s" if secs or not (hours or minutes) else "")
    return " ".join(p for p in parts if p)


class Interruptible:
    """SIGUSR1 raises JobInterrupted in the main thread while armed (see `_interruptible`)."""

    def __init__(self, watch: Watch, installed: bool) -> None:
        self.watch, self.installed = watch, installed
        self.armed = False
        self.fired = False

    @contextmanager
    def arming(self) -> Iterator[None]:
        """Interruptible while inside: the runner, not the bookkeeping around it."""
        self.armed = True
        try:
            yield
        finally:
            self.armed = False

    def handle(self, _signum: int, _frame: FrameType | None) -> None:
        """The signal handler (it runs in the main thread, so the flags need no lock)."""
        if self.fired or not self.armed:
            return  # once only: the runner's clean-up must not be cut short again
        self.fired = True
        self.watch.stop.set()
        raise JobInterrupted(self.watch.reason or "time-limit")  # Celery's soft limit

    def send(self) -> None:
        """Interrupt the runner, if it runs and has not been interrupted yet.

        The watch sends again on every round until the handler ran: a signal that arrives
        just as the thread starts to wait on a lock is handled only once the lock is free.
        """
        main = threading.main_thread().ident
        if self.installed and self.armed and not self.fired and main is not None:
            # To the thread, not the process: a blocking call there returns with EINTR.
            signal.pthread_kill(main, signal.SIGUSR1)


@contextmanager
def _interruptible(watch: Watch) -> Iterator[Interruptible]:
    """Install the SIGUSR1 handler while inside (see the module docstring).

    Only the main thread receives signals: elsewhere (a runner in a thread pool) nothing is
    installed, and a stuck runner is ended by the watch without being interrupted.
    """
    if threading.current_thread() is not threading.main_thread():
        yield Interruptible(watch, installed=False)
        return
    interruptible = Interruptible(watch, installed=True)
    watch.interruptible = interruptible
    previous = signal.signal(signal.SIGUSR1, interruptible.handle)
    try:
        yield interruptible
    finally:
        watch.interruptible = None
        signal.signal(signal.SIGUSR1, previous)


class Watch:
    """The thread beside a running attempt: heartbeat, cancel, stop (module docstring)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        job_id: int,
        worker: str,
        policy: Policy,
        *,
        terminate: Callable[[], None] | None = None,
    ) -> None:
        self.sessions, self.job_id, self.worker, self.policy = sessions, job_id, worker, policy
        self.stop = threading.Event()  # the runner should stop: its checks read this
        self.reason: StopReason | None = None
        self.interruptible: Interruptible | None = None
        self.terminate = terminate
        self._done = threading.Event()
        self._started = time.monotonic()
        self._cancel_seen: float | None = None
        self._interrupting = False
        self._ended = False

    @contextmanager
    def running(self) -> Iterator[Watch]:
        """Watch while inside."""
        thread = threading.Thread(target=self._loop, name=f"job-watch-{self.job_id}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._done.set()
            thread.join(timeout=self.policy.poll_s + 5)

    def _loop(self) -> None:
        last_beat = time.monotonic()
        while not self._done.wait(self.policy.poll_s):
            now = time.monotonic()
            beat = now - last_beat >= self.policy.heartbeat_s
            try:
                state = self._check(beat)
            except Exception:  # the database away for a moment: the next round tries again
                log.warning("job %s: could not check in with the database", self.job_id)
                continue
            if beat:
                last_beat = now
            self._act(state, now)
            if now - self._started >= self.policy.time_limit_s:
                # Celery's soft limit sends the same signal; this one also covers a signal
                # of Celery's that came too early to be handled (see Interruptible.send).
                self._interrupt("time-limit")
            if self._interrupting and self.interruptible is not None:
                self.interruptible.send()

    def _check(self, beat: bool) -> Literal["mine", "cancel", "ended", "lost"]:
        with self.sessions.begin() as session:
            if not beat:  # a look only: on SQLite, no write lock taken every poll
                session.connection(execution_options={READ_ONLY: True})
            job = session.get(Job, self.job_id, populate_existing=True)
            if job is None:
                return "lost"
            if job.state.final:
                return "ended"
            if not service.owns(job, self.worker):
                return "lost"  # requeued while this worker could not record its heartbeat
            if beat:
                job.heartbeat_at = utcnow()
            return "cancel" if job.cancel_requested else "mine"

    def _act(self, state: Literal["mine", "cancel", "ended", "lost"], now: float) -> None:
        if state == "ended" and not self._ended:
            # Ended by the runner (it returns in a moment) or by someone who took this
            # worker for gone: stop at the next check either way, but interrupt nothing.
            self._stop("cancelled")
        elif state == "lost":
            log.warning("job %s is no longer this worker's: stopping it", self.job_id)
            self._interrupt("lost")
        elif state == "cancel" or self._ended:
            if self._cancel_seen is None:
                self._cancel_seen = now
                self._stop("cancelled")
            waited = now - self._cancel_seen
            if waited >= 2 * self.policy.cancel_grace_s and self.terminate is not None:
                log.error("job %s: its task ignored the interruption; replacing the process",
                          self.job_id)  # fmt: skip
                self.terminate()
            elif waited >= self.policy.cancel_grace_s and not self._ended:
                self._end_cancelled()
                self._interrupt("cancelled")

    def _stop(self, reason: StopReason) -> None:
        self.reason = self.reason or reason
        self.stop.set()

    def _interrupt(self, reason: StopReason) -> None:
        self._stop(reason)
        self._interrupting = True

    def _end_cancelled(self) -> None:
        """End the job now: the runner did not reach a check within the grace period."""
        self._ended = True
        with self.sessions.begin() as session:
            job = session.get(Job, self.job_id, with_for_update=True, populate_existing=True)
            if job is not None and service.owns(job, self.worker):
                service.log(
                    session,
                    job,
                    f"the job did not stop within {self.policy.cancel_grace_s:g} s of the "
                    "cancel request; its task was interrupted",
                    level="warning",
                )
                service.mark_cancelled(session, job)


def fail_at_hard_limit(
    sessions: sessionmaker[Session], job_uid: str, kind: str, policy: Policy
) -> None:
    """End a job whose worker process was killed at the hard time limit (by the pool)."""
    with sessions.begin() as session:
        job = session.scalars(select(Job).where(Job.uid == job_uid).with_for_update()).one_or_none()
        if job is None or job.state != JobState.running:
            return
        if job.cancel_requested:
            service.mark_cancelled(session, job)
        else:
            service.fail(
                session, job, time_limit_reason(kind, policy.time_limit_s, policy.hard_limit_s)
            )


@contextmanager
def removed_if_interrupted(store: ObjectStore, prefix: str) -> Iterator[None]:
    """Remove what the attempt wrote under `prefix` when it is interrupted (not when the job
    moved to another worker: the output is that worker's now)."""
    try:
        yield
    except JobInterrupted as exc:
        if exc.reason != "lost":
            store.delete_prefix(prefix)
        raise
