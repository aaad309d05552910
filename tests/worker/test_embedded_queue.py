"""The embedded default's queue (kombu's SQLAlchemy transport, which never gives a dead
worker's task back): real prefork workers, killed, cancelled and timed out."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from tailor.config import Settings, get_settings
from tailor.db import migrate
from tailor.db.models import Dataset, Job, JobState, Role
from tailor.db.session import engine_for, session_factory
from tailor.demo.gitserver import GitServer
from tailor.jobs import service as jobs
from tailor.services.tokens.service import authenticate
from tailor.tenancy import team_for
from tests.conftest import Tenant
from tests.worker.conftest import TOKEN, module, queue_harvest, start_worker, stop, wait_for

FILES = 1200


@dataclass
class Embedded:
    """A workspace as `tailor up` makes it: SQLite, the SQLAlchemy broker, a file store."""

    env: dict[str, str]
    settings: Settings
    sessions: sessionmaker[Session]
    logs: Path


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Embedded]:
    values = {
        "TAILOR_WORKSPACE": str(tmp_path / "ws"),
        "TAILOR_GIT_ALLOW_HTTP": "true",
        "TAILOR_GIT_ALLOW_LOOPBACK": "true",
        # Watched closely, so that a test waits seconds rather than minutes.
        "TAILOR_JOB_CANCEL_POLL_S": "0.2",
        "TAILOR_JOB_HEARTBEAT_S": "0.5",
        "TAILOR_JOB_CANCEL_GRACE_S": "1",
        "TAILOR_JOB_REAPER_INTERVAL_S": "1",
        "TAILOR_HARVEST_TIMEOUT_S": "8",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    settings.ensure_workspace()
    migrate.upgrade(settings.database_url)
    yield Embedded(
        {**os.environ, **values},
        settings,
        session_factory(engine_for(settings.database_url)),
        tmp_path,
    )
    get_settings.cache_clear()


@pytest.fixture
def reports(tmp_path: Path) -> Iterator[str]:
    """The URL of a repository big enough for a harvest to take a while."""
    with GitServer(tmp_path / "git", tokens={TOKEN}) as git:
        git.create_repo("reports", {f"reports/r{i:04d}.py": module(i) for i in range(FILES)})
        yield git.url("reports")


def test_a_harvest_whose_worker_was_killed_runs_again_on_the_next_worker(
    embedded: Embedded, reports: str
) -> None:
    _tenant, uid = queue_harvest(embedded.settings, embedded.sessions, reports)
    first = start_worker(embedded.env, embedded.logs / "worker-a.log")
    try:
        wait_for(embedded.sessions, uid, {JobState.running})
        stop(first, signal.SIGKILL)  # the whole worker, as `tailor up` dies with it
        second = start_worker(embedded.env, embedded.logs / "worker-b.log")
        try:
            job = wait_for(embedded.sessions, uid, {JobState.succeeded, JobState.failed})
        finally:
            stop(second)
    finally:
        stop(first, signal.SIGKILL)
    assert (job.state, job.attempts) == (JobState.succeeded, 2), job.error
    assert job.result["stats"]["files_kept"] == FILES


def test_a_harvest_whose_worker_was_killed_can_be_cancelled_and_deleted(
    embedded: Embedded, reports: str
) -> None:
    tenant, uid = queue_harvest(embedded.settings, embedded.sessions, reports)
    worker = start_worker(embedded.env, embedded.logs / "worker.log")
    try:
        wait_for(embedded.sessions, uid, {JobState.running})
    finally:
        stop(worker, signal.SIGKILL)
    with embedded.sessions() as session:
        dataset = session.scalars(select(Dataset).join(Job).where(Job.uid == uid)).one().uid
    app = create_app(embedded.settings)
    base = f"/v1/teams/{tenant.slug}/datasets/{dataset}"
    with TestClient(app) as client:
        cancelled = client.post(f"{base}/cancel", headers=tenant.auth())
        deleted = client.delete(base, headers=tenant.auth())
    assert (cancelled.json()["state"], deleted.status_code) == ("cancelled", 204)


def cancel(sessions: sessionmaker[Session], tenant: Tenant, uid: str) -> None:
    with sessions.begin() as session:
        principal = authenticate(session, tenant.owner_token)
        access = team_for(session, principal, tenant.slug, Role.member)
        job = session.scalars(select(Job).where(Job.uid == uid)).one()
        jobs.request_cancel(session, access, job)


def test_a_cancel_ends_a_harvest_stuck_in_a_git_fetch(
    embedded: Embedded, stalling_git: str
) -> None:
    tenant, uid = queue_harvest(embedded.settings, embedded.sessions, stalling_git)
    worker = start_worker(embedded.env, embedded.logs / "worker.log")
    try:
        wait_for(embedded.sessions, uid, {JobState.running})
        cancel(embedded.sessions, tenant, uid)
        job = wait_for(embedded.sessions, uid, {JobState.cancelled, JobState.failed})
        alive = worker.poll() is None
    finally:
        stop(worker)
    assert (job.state, alive) == (JobState.cancelled, True)


def test_a_harvest_past_its_time_limit_fails_and_says_which_limit(
    embedded: Embedded, stalling_git: str
) -> None:
    env = {**embedded.env, "TAILOR_TIME_LIMITS_S": '{"harvest": 2}'}
    _tenant, uid = queue_harvest(embedded.settings, embedded.sessions, stalling_git)
    worker = start_worker(env, embedded.logs / "worker.log")
    try:
        job = wait_for(embedded.sessions, uid, {JobState.cancelled, JobState.failed})
    finally:
        stop(worker)
    assert job.state == JobState.failed
    assert "stopped at its time limit of 2 s" in (job.error or "")


def test_a_team_is_deleted_after_its_running_harvest_is_cancelled_and_no_task_crashes(
    embedded: Embedded, reports: str
) -> None:
    tenant, uid = queue_harvest(embedded.settings, embedded.sessions, reports)
    team = f"/v1/teams/{tenant.slug}"
    worker = start_worker(embedded.env, embedded.logs / "worker.log")
    try:
        wait_for(embedded.sessions, uid, {JobState.running})
        with TestClient(create_app(embedded.settings)) as client:
            refused = client.delete(team, headers=tenant.auth())
            client.post(f"{team}/jobs/{uid}/cancel", headers=tenant.auth())
            wait_for(embedded.sessions, uid, {JobState.cancelled})
            deleted = client.delete(team, headers=tenant.auth())
    finally:
        stop(worker)
    assert (refused.status_code, refused.json()["jobs"], deleted.status_code) == (409, [uid], 204)
    assert not (embedded.settings.workspace / "objects" / "teams" / tenant.slug).exists()
    assert "Traceback" not in (embedded.logs / "worker.log").read_text()
