"""A runner's recorder: a stale attempt cannot end the job another worker runs now."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.db.models import Job, JobMetric, JobState
from tailor.jobs import service as jobs
from tailor.jobs.recorder import JobRecorder
from tests.conftest import create_tenant, running_job


def test_an_attempt_whose_job_was_requeued_elsewhere_leaves_it_alone(
    sessions: sessionmaker[Session], session: Session, live_worker: str
) -> None:
    job = running_job(session, create_tenant(session), live_worker, attempts=2)
    ended = JobRecorder(sessions, job.id).finish(jobs.mark_cancelled)
    session.expire_all()
    assert (ended, session.get_one(Job, job.id).state) == (False, JobState.running)


def test_a_deleted_job_reads_as_cancelled(
    sessions: sessionmaker[Session], session: Session
) -> None:
    job = jobs.create_system_job(session, create_tenant(session).team.id, "harvest", {})
    session.commit()
    recorder = JobRecorder(sessions, job.id)
    session.delete(job)
    session.commit()
    assert recorder.cancelled()


def test_a_non_finite_metric_is_left_out_and_the_rest_recorded(
    sessions: sessionmaker[Session], session: Session, live_worker: str
) -> None:
    job = running_job(session, create_tenant(session), live_worker, kind="finetune")
    JobRecorder(sessions, job.id).metrics({"step": 3, "loss": float("nan"), "lr": 0.5})
    session.expire_all()
    rows = session.scalars(select(JobMetric).where(JobMetric.job_id == job.id)).all()
    assert [(m.step, m.name, m.value) for m in rows] == [(3, "lr", 0.5)]
