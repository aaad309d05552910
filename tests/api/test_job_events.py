"""POST /v1/internal/jobs/{id}/events: a cluster pod's events, written with its job's token."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings, get_settings
from tailor.db.models import Job, JobEvent, JobMetric, JobState
from tailor.jobs import service as jobs
from tailor.jobs.recorder import JobRecorder
from tailor.jobs.workloads import PhaseReport, apply_phase
from tailor.security import job_token
from tailor.stages.train.entrypoint import run_command
from tailor.stages.train.posting import EventPoster
from tailor.stages.train.protocol import EVENTS_URL_ENV, EXIT_SPEC_ERROR, JOB_TOKEN_ENV, events_path
from tests.conftest import Tenant, eventually

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


@contextmanager
def serving_later(app: FastAPI) -> Iterator[tuple[str, Callable[[], None]]]:
    """An address where the API is down (bound, not listening) and a switch that starts it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", thread.start
    finally:
        server.should_exit = True
        if thread.is_alive():
            thread.join(10)
        sock.close()


def test_the_pods_events_arrive_in_order_once_the_api_is_back(
    app: FastAPI, session: Session, tenant: Tenant
) -> None:
    job = cluster_job(session, tenant)
    with serving_later(app) as (url, start_api):
        poster = EventPoster(
            url + events_path(job.uid), job_token(KEY, job.uid), batch_size=2, flush_s=0.05,
            backoff_s=(0.05, 0.2),
        )  # fmt: skip
        for event in EVENTS:  # training goes on while the API is down
            poster.put(event)
        assert eventually(lambda: poster.failed_sends > 0)
        start_api()
        poster.close()
    lines, points = stored(session, job)
    assert poster.dropped == 0
    assert [m for _, m in lines] == [EVENTS[0]["message"], EVENTS[2]["message"]]
    assert points == [(1, "loss", 3.5), (1, "lr", 0.005), (2, "loss", 3.25), (2, "lr", 0.005)]


def test_a_poster_that_never_reaches_the_api_gives_up_and_counts_what_it_dropped(
    app: FastAPI,
) -> None:
    with serving_later(app) as (url, _never_started):
        poster = EventPoster(
            url + events_path("ft-gone"), "token", flush_s=0.05, backoff_s=(0.05, 0.1),
            final_wait_s=0.3,
        )  # fmt: skip
        for event in EVENTS:
            poster.put(event)
        poster.close()
    assert poster.dropped == len(EVENTS)


def test_a_failed_cluster_job_says_what_its_trainer_said(
    app: FastAPI, session: Session, tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = cluster_job(session, tenant)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"dataset_id": "ds-1", "max_steps": "many"}))
    with serving_later(app) as (url, start_api):
        start_api()
        monkeypatch.setenv(EVENTS_URL_ENV, url + events_path(job.uid))
        monkeypatch.setenv(JOB_TOKEN_ENV, job_token(KEY, job.uid))
        code = run_command(spec, job.uid, work_dir=tmp_path / "work")  # what the pod runs
    reason = "InvalidSpec: Pod failed with exit code 3 matching FailJob rule at index 0"
    apply_phase(session, job, PhaseReport(phase="Failed", reason=reason))  # the operator's
    session.commit()
    error = session.get_one(Job, job.id).error or ""
    assert code == EXIT_SPEC_ERROR
    assert error.startswith("invalid TrainSpec: ") and "max_steps" in error
    assert error.endswith(f"(cluster: {reason})")


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded"])
def test_internal_routes_are_not_found_through_the_ingress(
    client: TestClient, session: Session, tenant: Tenant, header: str
) -> None:
    job = cluster_job(session, tenant)
    token = job_token(KEY, job.uid)
    headers = {"Authorization": f"Bearer {token}", header: "for=203.0.113.7"}
    body = {"events": EVENTS[:1]}
    answer = client.post(f"/v1/internal/jobs/{job.uid}/events", json=body, headers=headers)
    assert answer.status_code == 404, answer.text
    assert stored(session, job) == ([], [])
