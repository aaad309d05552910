"""Real Celery workers in subprocesses, real git servers, and harvests queued for them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.models import Job, JobState, Role
from tailor.embedded import worker_command
from tailor.queue import make_sender
from tailor.security import CredentialCipher
from tailor.services.datasets.service import start_harvest
from tailor.services.repositories.schemas import RepositoryCreate
from tailor.services.repositories.service import create_repository
from tailor.stages.harvest.addresses import NetworkPolicy
from tailor.stages.harvest.spec import HarvestSpec
from tailor.stages.harvest.urls import UrlPolicy
from tailor.tenancy import Principal, TeamAccess
from tests.conftest import Tenant, create_tenant, redis_db

TOKEN = "tok-worker-5b1c"
# A database of its own per test process (as tests/api/conftest.py): runs side by side do not
# take each other's tasks.
BROKER = f"redis://127.0.0.1:6379/{redis_db()}"


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


def module(i: int) -> str:
    """A distinct, unremarkable Python module (so every file survives filters and dedup)."""
    body = "\n".join(f"    total += values[{j}] * {i * 31 + j}" for j in range(i % 7 + 3))
    return (
        f'"""Module {i}: weighted sums for report {i}."""\n\n\n'
        f"def weighted_{i}(values: list[int]) -> int:\n"
        f'    """Weighted sum number {i}."""\n    total = {i}\n{body}\n    return total\n'
    )


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A real prefork worker, in a process group of its own."""
    out = log.open("ab")
    return subprocess.Popen(
        worker_command(), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop the worker as it is stopped for real, wait for it, then end what it left.

    SIGTERM goes to the main process only, as `tailor up` and Kubernetes send it: sent to
    the whole group it also killed the pool process while it acknowledged its task, the pool
    started another, and the warm shutdown then waited on that one (10 s here, past 60 s on
    a loaded CI machine). SIGKILL goes to the whole group, as when a machine dies.
    """
    if proc.poll() is None:
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        proc.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # a pool process its parent left behind


def owner_access(tenant: Tenant) -> TeamAccess:
    principal = Principal(user_id=tenant.owner.id, email=tenant.owner.email)
    return TeamAccess(team=tenant.team, role=Role.owner, principal=principal)


def queue_harvest(
    settings: Settings, sessions: sessionmaker[Session], url: str
) -> tuple[Tenant, str]:
    """A new team with repository `url`, and the id of its queued harvest job."""
    return queue_harvest_of(settings, sessions, {"reports": url})


def queue_harvest_of(
    settings: Settings, sessions: sessionmaker[Session], urls: dict[str, str]
) -> tuple[Tenant, str]:
    """A new team with repositories `urls` (by name), and the id of its queued harvest job."""
    with sessions() as session:
        tenant = create_tenant(session)
        cipher = CredentialCipher(settings.encryption_key())
        local = UrlPolicy(allow_http=True, network=NetworkPolicy(allow_loopback=True))
        for name, url in urls.items():
            body = RepositoryCreate(name=name, url=url, credential_kind="token", credential=TOKEN)
            create_repository(session, owner_access(tenant), body, cipher, local)
        out = start_harvest(session, owner_access(tenant), HarvestSpec(), make_sender(settings))
        session.commit()
        return tenant, out.job_id


def wait_for(sessions: sessionmaker[Session], uid: str, states: set[JobState]) -> Job:
    """The job once it is in one of `states` (the test fails if it never gets there)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        with sessions() as session:
            job = session.scalars(select(Job).where(Job.uid == uid)).one()
            if job.state in states:
                return job
        time.sleep(0.05)
    raise AssertionError(f"job {uid} never reached {states}")


@pytest.fixture
def stalling_git() -> Iterator[str]:
    """The URL of a "git server" that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    closing = threading.Event()

    def accept() -> None:
        while not closing.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/reports.git"
    closing.set()
    server.close()
    for conn in held:
        conn.close()
