"""The reaper: a running job whose worker is gone runs again, fails, or ends cancelled."""

from __future__ import annotations

from datetime import timedelta

import redis
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.base import utcnow
from tailor.db.models import Job, JobState, ServedCompletion
from tailor.jobs.reaper import reap_once, sweep_once
from tailor.jobs.workers import this_worker
from tests.api.conftest import queued_tasks
from tests.conftest import Tenant, create_tenant, running_job
from tests.telemetry.factories import record

Broker = tuple[Celery, redis.Redis]


def arrange(committed: sessionmaker[Session], worker: str | None, **kwargs: object) -> Job:
    with committed() as s:
        tenant: Tenant = create_tenant(s)
        return running_job(s, tenant, worker, **kwargs)  # type: ignore[arg-type]


def stored(committed: sessionmaker[Session], job: Job) -> Job:
    with committed() as s:
        return s.get_one(Job, job.id)


def test_a_job_whose_worker_was_killed_is_queued_again(
    committed: sessionmaker[Session], dead_worker: str, broker: Broker
) -> None:
    sender, queue = broker
    job = arrange(committed, dead_worker)
    reap_once(committed, Settings(), sender)
    again = stored(committed, job)
    assert (again.state, again.worker, again.attempts) == (JobState.queued, None, 1)
    assert queued_tasks(queue) == [("tailor.harvest", [job.uid])]


def test_a_job_stuck_running_from_before_workers_were_recorded_is_queued_again(
    committed: sessionmaker[Session], broker: Broker
) -> None:
    sender, queue = broker
    job = arrange(committed, None, kind="evaluation")
    reap_once(committed, Settings(), sender)
    assert stored(committed, job).state == JobState.queued
    assert queued_tasks(queue) == [("tailor.evaluate", [job.uid])]


def test_a_job_a_live_worker_runs_is_left_alone(
    committed: sessionmaker[Session], broker: Broker
) -> None:
    sender, queue = broker
    job = arrange(committed, this_worker())
    reap_once(committed, Settings(), sender)
    assert (stored(committed, job).state, queued_tasks(queue)) == (JobState.running, [])


def test_a_job_whose_workers_kept_dying_fails(
    committed: sessionmaker[Session], dead_worker: str, broker: Broker
) -> None:
    sender, queue = broker
    settings = Settings()
    job = arrange(committed, dead_worker, attempts=settings.job_max_attempts)
    reap_once(committed, settings, sender)
    failed = stored(committed, job)
    assert (failed.state, queued_tasks(queue)) == (JobState.failed, [])
    assert f"gave up after {settings.job_max_attempts} attempts" in (failed.error or "")


def test_a_job_being_cancelled_when_its_worker_died_ends_cancelled(
    committed: sessionmaker[Session], dead_worker: str, broker: Broker
) -> None:
    sender, queue = broker
    job = arrange(committed, dead_worker)
    with committed.begin() as s:
        s.get_one(Job, job.id).cancel_requested = True
    reap_once(committed, Settings(), sender)
    assert (stored(committed, job).state, queued_tasks(queue)) == (JobState.cancelled, [])


def test_the_sweep_deletes_completion_telemetry_past_its_retention(
    committed: sessionmaker[Session], broker: Broker
) -> None:
    sender, _queue = broker
    with committed() as s:
        tenant = create_tenant(s)
        old = record(s, tenant.team, tenant.owner, at=utcnow() - timedelta(days=8))
        new = record(s, tenant.team, tenant.owner)
        s.commit()
    sweep_once(committed, Settings(telemetry_retention_days=7), sender)
    with committed() as s:
        assert s.get(ServedCompletion, old) is None
        assert s.get(ServedCompletion, new) is not None
