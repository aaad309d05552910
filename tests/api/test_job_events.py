"""POST /v1/internal/jobs/{id}/events: a cluster pod's events, written with its job's token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings, get_settings
from tailor.db.models import Job, JobEvent, JobMetric, JobState
from tailor.jobs import service as jobs
from tailor.jobs.recorder import JobRecorder
from tailor.security import job_token
from tests.conftest import Tenant

KEY = "job-token-key-for-tests"

EVENTS: list[dict[str, Any]] = [
    {"event": "log", "message": "LoRA on tiny-base: fp32, attention eager, cpu"},
    {"event": "metrics", "step": 1, "loss": 3.5, "lr": 0.005, "grad_norm": float("nan")},
    {"event": "progress", "fraction": 0.5, "message": "step 1 of 2, loss 3.5000"},
    {"event": "metrics", "step": 2, "loss": 3.25, "lr": 0.005},
    {"event": "progress", "fraction": 1.0, "message": "step 2 of 2, loss 3.2500"},
    {"event": "result", "steps": 2},
]


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Cluster settings with the job-token key the chart gives the API and the operator."""
    s = Settings(workspace=tmp_path / "ws", executor="kubernetes", job_token_key=KEY)
    s.ensure_workspace()
    yield s
    get_settings.cache_clear()


def cluster_job(session: Session, tenant: Tenant) -> Job:
    """A fine-tune the operator runs."""
    job = jobs.create_system_job(session, tenant.team.id, "finetune", {})
    job.executor, job.state = "kubernetes", JobState.running
    session.commit()
    return job


def post(client: TestClient, uid: str, token: str | None, events: list[dict[str, Any]]) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"events": events})  # NaN as the entrypoint's json.dumps writes it
    return client.post(f"/v1/internal/jobs/{uid}/events", content=body, headers=headers)


def stored(
    session: Session, job: Job
) -> tuple[list[tuple[str, str]], list[tuple[int, str, float]]]:
    """The job's event lines (past the first, its creation) and metric points."""
    session.expire_all()
    lines = session.scalars(select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.id))
    points = session.scalars(
        select(JobMetric).where(JobMetric.job_id == job.id).order_by(JobMetric.id)
    )
    return (
        [(e.level, e.message) for e in lines][1:],
        [(m.step, m.name, m.value) for m in points],
    )


def test_a_pods_events_are_stored_as_a_local_runs_relay_stores_them(
    client: TestClient, session: Session, sessions: sessionmaker[Session], tenant: Tenant
) -> None:
    posted, relayed = cluster_job(session, tenant), cluster_job(session, tenant)
    answer = post(client, posted.uid, job_token(KEY, posted.uid), EVENTS)
    assert answer.status_code == 200, answer.text
    recorder = JobRecorder(sessions, relayed.id)
    for event in EVENTS:  # what the local relay calls for the same lines
        kind, fields = event["event"], {k: v for k, v in event.items() if k != "event"}
        if kind == "metrics":
            recorder.metrics(fields)
        elif kind == "log":
            recorder.log(fields["message"])
        elif kind == "progress":
            recorder.progress(fields["fraction"], fields["message"])
    assert stored(session, posted) == stored(session, relayed)
    assert (session.get_one(Job, posted.id).progress, answer.json()) == (1.0, {"recorded": 6})


@pytest.mark.parametrize("token", ["other-job", None, "garbage"])
def test_no_token_but_the_jobs_own_writes_anything(
    client: TestClient, session: Session, tenant: Tenant, token: str | None
) -> None:
    job, other = cluster_job(session, tenant), cluster_job(session, tenant)
    sent = {"other-job": job_token(KEY, other.uid), None: None, "garbage": "x" * 43}[token]
    answer = post(client, job.uid, sent, EVENTS)
    assert answer.status_code == (401 if token is None else 404), answer.text
    assert stored(session, job) == ([], [])


def test_a_bad_event_refuses_the_whole_batch(
    client: TestClient, session: Session, tenant: Tenant
) -> None:
    job = cluster_job(session, tenant)
    bad = {"event": "metrics", "step": 3, "loss": "low"}
    answer = post(client, job.uid, job_token(KEY, job.uid), [*EVENTS[:2], bad])
    assert answer.status_code == 422, answer.text
    assert stored(session, job) == ([], [])


def test_a_finished_jobs_token_writes_nothing_more(
    client: TestClient, session: Session, tenant: Tenant
) -> None:
    job = cluster_job(session, tenant)
    jobs.fail(session, job, "the pod was evicted")
    session.commit()
    before = session.scalar(select(func.count()).where(JobEvent.job_id == job.id))
    answer = post(client, job.uid, job_token(KEY, job.uid), EVENTS)
    assert answer.status_code == 409, answer.text
    assert session.scalar(select(func.count()).where(JobEvent.job_id == job.id)) == before
