"""Jobs: progress in the event log by phase; a cancel and a worker's finish never cross; a
cancel ends a job nothing runs any more."""

from __future__ import annotations

import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from tailor.config import JOB_STALE_AFTER_S
from tailor.db.models import Job, JobState, Role
from tailor.jobs import service as jobs
from tailor.services.tokens.service import authenticate
from tailor.tenancy import TeamAccess, team_for
from tests.conftest import Tenant, create_tenant, running_job


def test_counting_within_a_phase_does_not_flood_the_event_log(session: Session) -> None:
    job = jobs.create_system_job(session, create_tenant(session).team.id, "finetune", {})
    for step in range(1, 51):
        jobs.report(session, job, step / 100, f"step {step} of 100, loss {7 - step / 10:.2f}")
    jobs.report(session, job, 0.6, "evaluating on held-out code")
    messages = [e.message for e in jobs.events(session, job)]
    assert messages == [
        "finetune job queued by the platform",
        "step 1 of 100, loss 6.90",
        "evaluating on held-out code",
    ]
    assert job.message == "evaluating on held-out code"


def test_a_cancel_during_the_workers_last_transaction_finds_the_job_finished(
    committed: sessionmaker[Session],
) -> None:
    with committed() as s:
        tenant = create_tenant(s)
        job_id = jobs.create_system_job(s, tenant.team.id, "finetune", {}).id
        jobs.begin_attempt(s, s.get_one(Job, job_id))
        s.commit()
    locked = threading.Event()

    def finish() -> None:  # the worker registering the adapter it trained
        with committed.begin() as s:
            job = jobs.lock_job(s, job_id)
            locked.set()
            time.sleep(0.3)  # the cancel arrives meanwhile
            jobs.succeed(s, job, {"adapter": "completion"})

    worker = threading.Thread(target=finish)
    worker.start()
    assert locked.wait(10)
    with committed.begin() as s:
        access = team_for(s, authenticate(s, tenant.owner_token), tenant.slug, Role.member)
        job = jobs.request_cancel(s, access, s.get_one(Job, job_id))
        seen = (job.state, job.cancel_requested)
    worker.join()
    assert seen == (JobState.succeeded, False)


def access_of(session: Session, tenant: Tenant) -> TeamAccess:
    return team_for(session, authenticate(session, tenant.owner_token), tenant.slug, Role.member)


def test_cancelling_a_job_whose_worker_was_killed_ends_it_at_once(
    session: Session, dead_worker: str
) -> None:
    tenant = create_tenant(session)
    job = running_job(session, tenant, dead_worker)
    jobs.request_cancel(session, access_of(session, tenant), job)
    assert (job.state, job.cancel_requested) == (JobState.cancelled, True)


def test_cancelling_a_job_whose_worker_went_silent_ends_it_at_once(session: Session) -> None:
    tenant = create_tenant(session)
    elsewhere = "worker-7f9c/4026531836/17/88123"  # another machine: only heartbeats tell
    job = running_job(session, tenant, elsewhere, heartbeat_age_s=JOB_STALE_AFTER_S + 1)
    jobs.request_cancel(session, access_of(session, tenant), job)
    assert job.state == JobState.cancelled


def test_cancelling_a_job_a_live_worker_runs_asks_the_worker(
    session: Session, live_worker: str
) -> None:
    tenant = create_tenant(session)
    job = running_job(session, tenant, live_worker)
    jobs.request_cancel(session, access_of(session, tenant), job)
    assert (job.state, job.cancel_requested) == (JobState.running, True)
