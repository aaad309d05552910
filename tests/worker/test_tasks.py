"""The tasks' wiring: each job kind's time limits, and the hard one failing its job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.exceptions import TimeLimitExceeded
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import DEFAULT_TIME_LIMITS_S, Settings, get_settings
from tailor.db import migrate
from tailor.db.models import Job, JobState
from tailor.db.session import engine_for, session_factory
from tailor.jobs import service as jobs
from tailor.jobs.workers import this_worker
from tailor.queue import HARVEST_PART_TASK, TASKS, celery_config
from tests.conftest import create_tenant, running_job
from worker import tasks
from worker.app import app


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sessionmaker[Session]]:
    """The worker's settings: an embedded workspace, harvests limited to 60 s (+ 30 s)."""
    monkeypatch.setenv("TAILOR_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("TAILOR_TIME_LIMITS_S", '{"harvest": 60}')
    monkeypatch.setenv("TAILOR_TIME_LIMIT_GRACE_S", "30")
    get_settings.cache_clear()
    tasks._sessions.cache_clear()
    settings = get_settings()
    settings.ensure_workspace()
    migrate.upgrade(settings.database_url)
    yield session_factory(engine_for(settings.database_url))
    get_settings.cache_clear()
    tasks._sessions.cache_clear()


def test_every_job_kind_has_a_task_with_soft_and_hard_time_limits() -> None:
    settings = Settings(time_limits_s={"harvest": 60}, time_limit_grace_s=30)
    limits = celery_config(settings)["task_annotations"]
    assert set(DEFAULT_TIME_LIMITS_S) == set(TASKS)
    timed = set(TASKS.values()) | {HARVEST_PART_TASK}
    assert set(limits) == timed and timed <= set(app.tasks)
    assert limits["tailor.harvest"] == {"soft_time_limit": 60, "time_limit": 90}
    assert limits[HARVEST_PART_TASK] == limits["tailor.harvest"]  # parts of a harvest alike


def test_a_job_killed_at_its_hard_time_limit_is_failed_by_the_worker(
    workspace: sessionmaker[Session],
) -> None:
    with workspace() as session:
        job = running_job(session, create_tenant(session), this_worker())
    # What Celery calls in the worker's main process once the pool killed the task.
    tasks.harvest.on_failure(TimeLimitExceeded(90), "task-id", [job.uid], {}, None)
    with workspace() as session:
        failed = session.get_one(Job, job.id)
    assert failed.state == JobState.failed
    assert "killed at its hard time limit of 1 min 30 s" in (failed.error or "")


def test_an_adapter_task_that_crashes_fails_its_job_without_quoting_the_crash(
    workspace: sessionmaker[Session],
) -> None:
    with workspace() as session:
        tenant = create_tenant(session)
        job = jobs.create_system_job(session, tenant.team.id, "adapter-compose", {})
        session.commit()

    with pytest.raises(KeyError):  # a spec without its composition: a bug, not a user error
        tasks.adapter_compose(job.uid)

    with workspace() as session:
        failed = session.get_one(Job, job.id)
    assert failed.state == JobState.failed
    assert "KeyError" in (failed.error or "") and "composition" not in (failed.error or "")


def test_beat_resyncs_the_teams_on_the_cluster_and_has_nothing_to_do_embedded() -> None:
    cluster = celery_config(Settings(executor="kubernetes", team_resync_interval_s=120))

    [entry] = cluster["beat_schedule"].values()
    assert (entry["task"], entry["schedule"]) == ("tailor.team.resync", 120)
    assert entry["task"] in app.tasks
    assert celery_config(Settings())["beat_schedule"] == {}
