"""The worker side of an evaluation: a cancel stops it and it ends cancelled, not scored."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from tailor.db.models import Job, JobState
from tailor.jobs import service as jobs
from tailor.services.evaluations.run import run_evaluation_job
from tailor.stages.evaluate.spec import EvalSpec
from tailor.storage import FileStore
from tests.conftest import create_tenant, register_base
from tests.evaluate.conftest import DATASET, TEAM


def test_a_cancelled_evaluation_stops_and_keeps_no_scores(
    sessions: sessionmaker[Session], session: Session, team_store: FileStore, tiny_base: Path
) -> None:
    spec = EvalSpec.model_validate(
        {
            "team": TEAM,
            "base_model": "tiny-base",
            "dataset_id": DATASET,
            "fim": {"tasks": 4, "max_new_tokens": 8, "loss_documents": 2},
            "humaneval": {"enabled": False},
        }
    )
    team_id = create_tenant(session).team.id
    register_base(session, "tiny-base", tiny_base)
    job = jobs.create_system_job(session, team_id, "evaluation", {"eval": spec.model_dump()})
    jobs.begin_attempt(session, job)
    job.cancel_requested = True  # asked while it ran; the worker died and it was redelivered
    session.commit()
    run_evaluation_job(sessions, team_store, job.uid)
    session.expire_all()
    stored = session.get_one(Job, job.id)
    assert (stored.state, stored.result) == (JobState.cancelled, {})


def test_an_evaluation_of_a_base_the_catalog_lacks_fails_before_loading_anything(
    sessions: sessionmaker[Session], session: Session, team_store: FileStore
) -> None:
    spec = EvalSpec.model_validate(
        {"team": TEAM, "base_model": "gone-base", "dataset_id": DATASET,
         "humaneval": {"enabled": False}}
    )  # fmt: skip
    team_id = create_tenant(session).team.id
    job = jobs.create_system_job(session, team_id, "evaluation", {"eval": spec.model_dump()})
    session.commit()
    run_evaluation_job(sessions, team_store, job.uid)
    session.expire_all()
    stored = session.get_one(Job, job.id)
    assert stored.state == JobState.failed
    assert stored.error is not None and "catalog" in stored.error
