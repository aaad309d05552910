"""A harvest of many repositories fanned out over two real Celery workers on Redis."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db import migrate
from tailor.db.models import HarvestPart, Job, JobState, Team
from tailor.db.session import engine_for, session_factory
from tailor.demo.gitserver import GitServer
from tailor.jobs import service as jobs
from tailor.services.datasets.run import run_harvest_job
from tailor.storage import FileStore
from tests.harvest.conftest import LEDGER
from tests.worker.conftest import (
    TOKEN,
    module,
    owner_access,
    queue_harvest_of,
    start_worker,
    stop,
    wait_for,
)

REPOS, FILES = 4, 300


@dataclass
class Deployment:
    """Settings and database of the workers' deployment, and a way to start workers."""

    settings: Settings
    sessions: sessionmaker[Session]
    env: dict[str, str]
    logs: Path

    def worker(self, name: str) -> Any:
        """A started worker (one process), once it says it is ready."""
        log = self.logs / f"{name}.log"
        proc = start_worker(self.env, log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if log.exists() and b" ready." in log.read_bytes():
                return proc
            time.sleep(0.1)
        stop(proc)
        raise AssertionError(f"worker {name} never became ready: {log.read_text()[-2000:]}")


@pytest.fixture
def deployment(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    env = {**env, "TAILOR_HARVEST_FANOUT_MIN_REPOS": "2"}
    for key, value in env.items():
        if key.startswith("TAILOR_"):
            monkeypatch.setenv(key, value)
    settings = Settings()
    settings.ensure_workspace()
    migrate.upgrade(settings.database_url)
    return Deployment(settings, session_factory(engine_for(settings.database_url)), env, tmp_path)


def org_files(r: int) -> dict[str, str]:
    """Repository r: distinct modules, plus an exact and a near copy shared across repos."""
    files = {f"pkg{r}/m{i:04d}.py": module(r * 10_000 + i) for i in range(FILES)}
    ledger = LEDGER.format(noun="invoice", cls="Invoice")
    files[f"pkg{r}/ledger.py"] = ledger if r % 2 else ledger + "\n\nLIMIT_CENTS = 5\n"
    files[f"pkg{r}/shared.py"] = module(99_999)
    return files


@pytest.fixture
def org(tmp_path: Path) -> Iterator[dict[str, str]]:
    """REPOS repositories on a real git server: their names and clone URLs."""
    with GitServer(tmp_path / "git", tokens={TOKEN}) as git:
        for r in range(REPOS):
            git.create_repo(f"repo{r}", org_files(r))
        yield {f"repo{r}": git.url(f"repo{r}") for r in range(REPOS)}


def dataset(d: Deployment, job: Job) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A finished harvest's rows and manifest statistics (less the timings)."""
    with d.sessions() as session:
        team = session.get_one(Team, job.team_id).slug
        job = session.get_one(Job, job.id)
    store = FileStore(d.settings.workspace / "objects")
    prefix = f"teams/{team}/datasets/{job.result['dataset_id']}/"
    manifest = json.loads(store.get_bytes(prefix + "manifest.json"))
    rows = [
        r
        for shard in manifest["shards"]
        for r in pq.read_table(io.BytesIO(store.get_bytes(shard["key"]))).to_pylist()
    ]
    stats = {k: v for k, v in manifest["stats"].items() if k != "seconds"}
    return rows, stats


def parts_of(d: Deployment, job: Job) -> list[HarvestPart]:
    with d.sessions() as session:
        return list(
            session.scalars(
                select(HarvestPart).where(HarvestPart.job_id == job.id).order_by(HarvestPart.index)
            )
        )


def test_two_workers_write_the_single_tasks_dataset(
    deployment: Deployment, org: dict[str, str]
) -> None:
    d = deployment
    workers = [d.worker("a"), d.worker("b")]
    try:
        _tenant, uid = queue_harvest_of(d.settings, d.sessions, org)
        fanned = wait_for(d.sessions, uid, {JobState.succeeded, JobState.failed})
    finally:
        for w in workers:
            stop(w)
    assert fanned.state == JobState.succeeded, fanned.error
    parts = parts_of(d, fanned)
    assert [p.state for p in parts] == ["done"] * REPOS
    assert len({p.worker for p in parts}) == 2  # both workers ran parts
    _tenant, single_uid = queue_harvest_of(d.settings, d.sessions, org)
    run_harvest_job(d.sessions, FileStore(d.settings.workspace / "objects"), d.settings, single_uid)
    single = wait_for(d.sessions, single_uid, {JobState.succeeded, JobState.failed})
    assert parts_of(d, single) == []  # no dispatcher: the single-task path
    rows, stats = dataset(d, fanned)
    assert (rows, stats) == dataset(d, single)
    # shared.py in every repository after the first; each ledger variant in two of them
    assert stats["duplicates"]["exact"] == (REPOS - 1) + (REPOS - 2)
    assert stats["duplicates"]["near"] == 1  # the second variant, a near copy of the first


def pid_of(worker: str | None) -> int:
    """The process id in a worker identity (`machine/namespace/pid/start`)."""
    assert worker is not None
    return int(worker.rsplit("/", 2)[1])


def test_a_worker_killed_mid_part_costs_only_that_parts_retry(
    deployment: Deployment, org: dict[str, str]
) -> None:
    d = deployment
    workers = [d.worker("a"), d.worker("b")]
    try:
        _tenant, uid = queue_harvest_of(d.settings, d.sessions, org)
        job = wait_for(d.sessions, uid, {JobState.running})
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:
            with d.sessions() as session:
                coordinator = session.get_one(Job, job.id).worker
            victim = next(
                (p for p in parts_of(d, job) if p.state == "running" and p.worker != coordinator),
                None,
            )
        assert victim is not None, "no part task ever ran beside the coordinator"
        os.kill(pid_of(victim.worker), signal.SIGKILL)  # the pool process running the part
        job = wait_for(d.sessions, uid, {JobState.succeeded, JobState.failed})
    finally:
        for w in workers:
            stop(w)
    assert (job.state, job.attempts) == (JobState.succeeded, 1), job.error
    runs = {p.index: p.runs for p in parts_of(d, job)}
    assert runs == {i: 2 if i == victim.index else 1 for i in range(REPOS)}
    rows, _stats = dataset(d, job)
    assert {r["repo"] for r in rows} == set(org)


def test_cancel_stops_every_part(deployment: Deployment, stalling_git: str, tmp_path: Path) -> None:
    d = deployment
    urls = {f"stuck{r}": stalling_git.replace("reports", f"stuck{r}") for r in range(3)}
    workers = [d.worker("a"), d.worker("b")]
    try:
        tenant, uid = queue_harvest_of(d.settings, d.sessions, urls)
        job = wait_for(d.sessions, uid, {JobState.running})
        deadline = time.monotonic() + 120
        while sum(p.state == "running" for p in parts_of(d, job)) < 2:
            assert time.monotonic() < deadline, "the parts never started"
            time.sleep(0.05)
        with d.sessions.begin() as session:
            jobs.request_cancel(session, owner_access(tenant), session.get_one(Job, job.id))
        job = wait_for(d.sessions, uid, {JobState.cancelled, JobState.failed})
        deadline = time.monotonic() + 60
        while any(p.state == "running" for p in parts_of(d, job)):
            assert time.monotonic() < deadline, [(p.index, p.state) for p in parts_of(d, job)]
            time.sleep(0.05)
    finally:
        for w in workers:
            stop(w)
    assert job.state == JobState.cancelled, job.error
    states = [p.state for p in parts_of(d, job)]
    assert states.count("cancelled") >= 2 and "done" not in states
    with d.sessions() as session:
        team = session.get_one(Team, job.team_id).slug
    assert not list((d.settings.workspace / "objects" / "teams" / team).rglob("*.*"))


def test_when_every_part_fails_the_harvest_fails_and_leaves_nothing(
    deployment: Deployment,
) -> None:
    d = deployment
    urls = {f"gone{r}": f"http://127.0.0.1:9/gone{r}.git" for r in range(2)}  # nothing listens
    worker = d.worker("a")  # one process: the coordinator runs every part itself
    try:
        _tenant, uid = queue_harvest_of(d.settings, d.sessions, urls)
        job = wait_for(d.sessions, uid, {JobState.succeeded, JobState.failed})
    finally:
        stop(worker)
    assert job.state == JobState.failed
    assert "no repository could be harvested" in (job.error or "")
    assert [p.state for p in parts_of(d, job)] == ["done", "done"]  # each ended, as failed
    with d.sessions() as session:
        team = session.get_one(Team, job.team_id).slug
    assert not list((d.settings.workspace / "objects" / "teams" / team).rglob("*.*"))
