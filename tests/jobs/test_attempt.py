"""One attempt at a job: claimed once, watched, stopped by a cancel or its time limit."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.models import Job, JobState, Role
from tailor.jobs import service as jobs
from tailor.jobs.attempt import JobInterrupted, Policy, fail_at_hard_limit, run_attempt
from tailor.jobs.workers import this_worker
from tailor.services.tokens.service import authenticate
from tailor.tenancy import team_for
from tests.conftest import Tenant, create_tenant, eventually, running_job

# Watched closely so that the tests take fractions of a second.
POLICY = replace(
    Policy.of(Settings(), "harvest"), poll_s=0.02, heartbeat_s=0.05, cancel_grace_s=0.3
)


@pytest.fixture
def tenant(committed: sessionmaker[Session]) -> Tenant:
    with committed() as s:
        return create_tenant(s)


def queued(committed: sessionmaker[Session], tenant: Tenant) -> Job:
    with committed() as s:
        job = jobs.create_system_job(s, tenant.team.id, "harvest", {})
        s.commit()
        return job


def stored(committed: sessionmaker[Session], job: Job) -> Job:
    with committed() as s:
        return s.get_one(Job, job.id)


def events(committed: sessionmaker[Session], job: Job) -> list[str]:
    with committed() as s:
        return [e.message for e in jobs.events(s, s.get_one(Job, job.id))]


# A runner, the event it sets once running, and what it saw (the interruption, its clean-up).
Stuck = tuple[Callable[[threading.Event], None], threading.Event, list[str]]


@pytest.fixture
def stuck() -> Iterator[Stuck]:
    """A runner stuck in a call that never returns by itself (it heeds no stop event)."""
    entered, seen = threading.Event(), []
    forever = threading.Event()

    def runner(_stop: threading.Event) -> None:
        entered.set()
        try:
            forever.wait()
        except JobInterrupted as exc:
            seen.append(exc.reason)
            raise
        finally:
            seen.append("cleaned up")

    yield runner, entered, seen
    forever.set()


def in_background(action: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def test_a_crash_fails_the_job_without_quoting_the_exception(
    committed: sessionmaker[Session], tenant: Tenant
) -> None:
    job = queued(committed, tenant)

    def crash(_stop: threading.Event) -> None:
        raise RuntimeError("clone of https://ci:hunter2-token@git.example.com failed")

    with pytest.raises(RuntimeError):
        run_attempt(committed, job.uid, "harvest", POLICY, crash)
    failed = stored(committed, job)
    assert failed.state == JobState.failed
    assert "RuntimeError" in (failed.error or "") and "hunter2" not in (failed.error or "")


def test_a_delivery_for_a_job_a_live_worker_runs_does_not_run_it_again(
    committed: sessionmaker[Session], tenant: Tenant, live_worker: str
) -> None:
    with committed() as s:
        job = running_job(s, tenant, live_worker)
    ran = []
    run_attempt(committed, job.uid, "harvest", POLICY, lambda _stop: ran.append(True))
    again = stored(committed, job)
    assert (ran, again.state, again.attempts, again.worker) == (
        [],
        JobState.running,
        1,
        live_worker,
    )


def test_a_delivery_for_a_finished_job_does_nothing(
    committed: sessionmaker[Session], tenant: Tenant
) -> None:
    job = queued(committed, tenant)
    with committed.begin() as s:
        jobs.succeed(s, s.get_one(Job, job.id), {"dataset_id": "ds-1"})
    ran = []
    run_attempt(committed, job.uid, "harvest", POLICY, lambda _stop: ran.append(True))
    assert (ran, stored(committed, job).attempts) == ([], 0)


def test_a_delivery_after_the_worker_died_runs_the_next_attempt(
    committed: sessionmaker[Session], tenant: Tenant, dead_worker: str
) -> None:
    with committed() as s:
        job = running_job(s, tenant, dead_worker)

    def finish(_stop: threading.Event) -> None:
        with committed.begin() as s:
            jobs.succeed(s, s.get_one(Job, job.id), {})

    run_attempt(committed, job.uid, "harvest", POLICY, finish)
    done = stored(committed, job)
    assert (done.state, done.attempts, done.worker) == (JobState.succeeded, 2, this_worker())


def test_a_job_whose_worker_keeps_dying_fails_after_the_last_attempt(
    committed: sessionmaker[Session], tenant: Tenant, dead_worker: str
) -> None:
    with committed() as s:
        job = running_job(s, tenant, dead_worker, attempts=POLICY.max_attempts)
    ran = []
    run_attempt(committed, job.uid, "harvest", POLICY, lambda _stop: ran.append(True))
    failed = stored(committed, job)
    assert (ran, failed.state, failed.attempts) == ([], JobState.failed, POLICY.max_attempts)
    assert f"gave up after {POLICY.max_attempts} attempts" in (failed.error or "")


def test_a_delivery_for_a_deleted_job_ends_quietly(committed: sessionmaker[Session]) -> None:
    ran = []
    run_attempt(committed, "ha-000000000000", "harvest", POLICY, lambda _s: ran.append(True))
    assert ran == []


def test_a_running_attempt_records_heartbeats(
    committed: sessionmaker[Session], tenant: Tenant
) -> None:
    job = queued(committed, tenant)
    beats = []

    def runner(_stop: threading.Event) -> None:
        first = stored(committed, job).heartbeat_at
        assert eventually(lambda: stored(committed, job).heartbeat_at != first)
        beats.append(first)

    run_attempt(committed, job.uid, "harvest", POLICY, runner)
    assert len(beats) == 1


def cancel_once_running(committed: sessionmaker[Session], tenant: Tenant, job: Job) -> None:
    assert eventually(lambda: stored(committed, job).state == JobState.running)
    with committed.begin() as s:
        access = team_for(s, authenticate(s, tenant.owner_token), tenant.slug, Role.member)
        jobs.request_cancel(s, access, s.get_one(Job, job.id))


def test_a_cancel_reaches_a_runner_through_its_stop_event(
    committed: sessionmaker[Session], tenant: Tenant
) -> None:
    job = queued(committed, tenant)

    def heeding(stop: threading.Event) -> None:
        assert stop.wait(10)  # what the pipelines' checks read
        with committed.begin() as s:
            jobs.mark_cancelled(s, s.get_one(Job, job.id))

    helper = in_background(lambda: cancel_once_running(committed, tenant, job))
    run_attempt(committed, job.uid, "harvest", POLICY, heeding)
    helper.join()
    assert stored(committed, job).state == JobState.cancelled


def test_a_cancel_interrupts_a_runner_stuck_in_a_long_call(
    committed: sessionmaker[Session],
    tenant: Tenant,
    stuck: Stuck,
) -> None:
    runner, _entered, seen = stuck
    job = queued(committed, tenant)
    helper = in_background(lambda: cancel_once_running(committed, tenant, job))
    run_attempt(committed, job.uid, "harvest", POLICY, runner)
    helper.join()
    assert (stored(committed, job).state, seen) == (
        JobState.cancelled,
        ["cancelled", "cleaned up"],
    )
    assert any("did not stop within" in m for m in events(committed, job))


def test_the_soft_time_limit_stops_the_runner_and_fails_the_job_with_a_reason(
    committed: sessionmaker[Session],
    tenant: Tenant,
    stuck: Stuck,
) -> None:
    runner, entered, seen = stuck
    job = queued(committed, tenant)
    main = threading.main_thread().ident
    assert main is not None

    def soft_limit() -> None:  # what Celery's prefork pool sends at a task's soft limit
        assert entered.wait(10)
        # Again until handled: one that comes as the runner starts to wait on a lock is
        # handled only when the lock is free (the watch resends its own for that reason).
        while not seen:
            signal.pthread_kill(main, signal.SIGUSR1)
            time.sleep(0.05)

    helper = in_background(soft_limit)
    run_attempt(committed, job.uid, "harvest", POLICY, runner)
    helper.join()
    failed = stored(committed, job)
    assert (failed.state, seen) == (JobState.failed, ["time-limit", "cleaned up"])
    assert "time limit of 4 h" in (failed.error or "")
    assert "TAILOR_TIME_LIMITS_S" in (failed.error or "")


def test_a_job_killed_at_its_hard_time_limit_fails_with_a_reason(
    committed: sessionmaker[Session], tenant: Tenant
) -> None:
    with committed() as s:
        job = running_job(s, tenant, this_worker())
    fail_at_hard_limit(committed, job.uid, "harvest", POLICY)
    failed = stored(committed, job)
    assert failed.state == JobState.failed
    reason = "killed at its hard time limit of 4 h 5 min (it did not stop at its time limit of 4 h)"
    assert reason in (failed.error or "")


def test_the_watch_stops_a_runner_at_its_time_limit(
    committed: sessionmaker[Session],
    tenant: Tenant,
    stuck: Stuck,
) -> None:
    runner, _entered, seen = stuck
    job = queued(committed, tenant)
    run_attempt(committed, job.uid, "harvest", replace(POLICY, time_limit_s=1), runner)
    failed = stored(committed, job)
    assert (failed.state, seen) == (JobState.failed, ["time-limit", "cleaned up"])
    assert "stopped at its time limit of 1 s" in (failed.error or "")
