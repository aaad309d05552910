"""A worker killed mid-harvest: real Celery workers on Redis, the job finishes on another one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.datasets.service import start_harvest
from tailor.db import migrate
from tailor.db.models import Job, JobState, Role, Team
from tailor.db.session import engine_for, session_factory
from tailor.demo.gitserver import GitServer
from tailor.embedded import worker_command
from tailor.harvest.spec import HarvestSpec
from tailor.queue import make_sender
from tailor.repositories.addresses import NetworkPolicy
from tailor.repositories.schemas import RepositoryCreate
from tailor.repositories.service import create_repository
from tailor.repositories.urls import UrlPolicy
from tailor.security import CredentialCipher
from tailor.tenancy import Principal, TeamAccess
from tests.conftest import create_tenant

BROKER = "redis://127.0.0.1:6379/11"
TOKEN = "tok-redelivery-5b1c"
FILES = 1200


def module(i: int) -> str:
    """A distinct, unremarkable Python module (so every file survives filters and dedup)."""
    body = "\n".join(f"    total += values[{j}] * {i * 31 + j}" for j in range(i % 7 + 3))
    return (
        f'"""Module {i}: weighted sums for report {i}."""\n\n\n'
        f"def weighted_{i}(values: list[int]) -> int:\n"
        f'    """Weighted sum number {i}."""\n    total = {i}\n{body}\n    return total\n'
    )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment of a cluster-like deployment: a file DB and store, Redis as the broker."""
    redis.Redis.from_url(BROKER).flushdb()
    ws = tmp_path / "ws"
    values = {
        "TAILOR_WORKSPACE": str(ws),
        "TAILOR_BROKER_URL": BROKER,
        "TAILOR_GIT_ALLOW_HTTP": "true",
        "TAILOR_GIT_ALLOW_LOOPBACK": "true",
        # A vanished worker's task comes back after 3 s instead of hours.
        "TAILOR_BROKER_VISIBILITY_TIMEOUT_S": "3",
    }
    yield {**os.environ, **values}
    redis.Redis.from_url(BROKER).flushdb()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        worker_command(), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)


def queue_harvest(settings: Settings, sessions: sessionmaker[Session], url: str) -> str:
    with sessions() as session:
        tenant = create_tenant(session)
        access = TeamAccess(
            team=tenant.team,
            role=Role.owner,
            principal=Principal(user_id=tenant.owner.id, email=tenant.owner.email),
        )
        body = RepositoryCreate(name="reports", url=url, credential_kind="token", credential=TOKEN)
        cipher = CredentialCipher(settings.encryption_key())
        local = UrlPolicy(allow_http=True, network=NetworkPolicy(allow_loopback=True))
        create_repository(session, access, body, cipher, local)
        out = start_harvest(session, access, HarvestSpec(), make_sender(settings))
        session.commit()
        return out.job_id


def wait_for(sessions: sessionmaker[Session], uid: str, states: set[JobState]) -> Job:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        with sessions() as session:
            job = session.scalars(select(Job).where(Job.uid == uid)).one()
            if job.state in states:
                return job
        time.sleep(0.05)
    raise AssertionError(f"job {uid} never reached {states}")


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
        uid = queue_harvest(settings, sessions, git.url("reports"))
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
