"""Job fixtures: workers that live and workers that died, as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from celery import Celery
from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.db.base import utcnow
from tailor.db.models import Job, JobState
from tailor.jobs import service as jobs
from tailor.jobs.workers import identity_of
from tailor.queue import make_sender
from tests.conftest import Tenant


@pytest.fixture
def broker() -> Iterator[tuple[Celery, redis.Redis]]:
    """A sender to a private Redis database, and that database (read it with queued_tasks)."""
    db = 1 + os.getpid() % 14
    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    client.flushdb()
    url = f"redis://127.0.0.1:6379/{db}"
    yield make_sender(Settings(broker_url=url, result_backend=url)), client
    client.flushdb()


@pytest.fixture
def live_worker() -> Iterator[str]:
    """The identity of another process of this machine that keeps running."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield identity_of(proc.pid)
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def dead_worker() -> str:
    """The identity a process of this machine had before it was killed."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    identity = identity_of(proc.pid)
    proc.kill()
    proc.wait()
    return identity


def running_job(
    session: Session,
    tenant: Tenant,
    worker: str | None,
    *,
    kind: str = "harvest",
    attempts: int = 1,
    heartbeat_age_s: float = 0.0,
) -> Job:
    """A job that `worker` runs (attempt `attempts`), last heard of `heartbeat_age_s` ago."""
    job = jobs.create_system_job(session, tenant.team.id, kind, {})
    job.state, job.attempts, job.started_at = JobState.running, attempts, utcnow()
    job.worker = worker
    job.heartbeat_at = utcnow() - timedelta(seconds=heartbeat_age_s)
    session.commit()
    return job
