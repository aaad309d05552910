"""A worker killed mid-harvest: real Celery workers on Redis, the job finishes on another one."""

from __future__ import annotations

import signal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tailor.config import Settings
from tailor.db import migrate
from tailor.db.models import JobState, Team
from tailor.db.session import engine_for, session_factory
from tailor.demo.gitserver import GitServer
from tests.worker.conftest import TOKEN, module, queue_harvest, start_worker, stop, wait_for

FILES = 1200


def test_a_harvest_survives_its_worker_being_killed(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("TAILOR_WORKSPACE", "TAILOR_BROKER_URL", "TAILOR_BROKER_VISIBILITY_TIMEOUT_S"):
        monkeypatch.setenv(key, env[key])
    settings = Settings()
    settings.ensure_workspace()
    migrate.upgrade(settings.database_url)
    sessions = session_factory(engine_for(settings.database_url))
    with GitServer(tmp_path / "git", tokens={TOKEN}) as git:
        git.create_repo("reports", {f"reports/r{i:04d}.py": module(i) for i in range(FILES)})
        _tenant, uid = queue_harvest(settings, sessions, git.url("reports"))
        first = start_worker(env, tmp_path / "worker-a.log")
        try:
            wait_for(sessions, uid, {JobState.running})
            stop(first, signal.SIGKILL)  # the whole worker, pool children included
            second = start_worker(env, tmp_path / "worker-b.log")
            try:
                job = wait_for(sessions, uid, {JobState.succeeded, JobState.failed})
            finally:
                stop(second)
        finally:
            stop(first, signal.SIGKILL)
    assert (job.state, job.attempts) == (JobState.succeeded, 2), job.error
    with sessions() as session:
        team = session.get_one(Team, job.team_id).slug
    prefix = settings.workspace / "objects" / "teams" / team / "datasets" / job.result["dataset_id"]
    rows = [
        r for shard in sorted(prefix.glob("*.parquet")) for r in pq.read_table(shard).to_pylist()
    ]
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == FILES
