"""A fine-tune's events and metrics, run locally and as the operator's pod, are the same.

The same spec trains twice on the CPU: once through the local executor (the worker relays
the entrypoint's stdout into the job), once as the pod the operator renders for a
FineTuneJob, run by the harness kubelet with its Secret and env, posting its events to the
API served on a real port. Both jobs must hold the same event lines, in the same order, and
the same metric points.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from tailor_operator import training
from tailor_operator.config import ObjectStore, OperatorConfig
from tailor_operator.resources import FineTuneJobSpec

from tailor.config import Settings
from tailor.db.models import Job, JobEvent, JobMetric, JobState, Team
from tailor.jobs import service as jobs
from tailor.services.finetunes.run import run_finetune_job
from tailor.storage import S3Store
from tests.conftest import create_team, create_user, register_base
from tests.operator.conftest import NAMESPACE, REDIS_DB, TEAM, Platform
from tests.operator.test_training_pod import kubelet as kubelet
from tests.operator.test_training_pod import tiny_train_spec
from tests.support.kubelet import Kubelet

pytestmark = pytest.mark.asyncio

KEY = "job-token-key-for-tests"
# Measured on the machine, not computed by the training: equal in name and step only.
MEASURED = {"tokens_per_s", "peak_memory_bytes"}


@pytest.fixture(autouse=True)
def job_token_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key the chart gives the API (read when the platform fixture builds its settings)."""
    monkeypatch.setenv("TAILOR_JOB_TOKEN_KEY", KEY)


@pytest.fixture
def s3_env(s3_store: S3Store, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local run's entrypoint finds the bucket the pod uses (through the environment)."""
    for name, value in {
        "TAILOR_OBJECT_STORE_URL": s3_store.url,
        "TAILOR_S3_ENDPOINT_URL": s3_endpoint,
        "TAILOR_S3_ACCESS_KEY_ID": "test",
        "TAILOR_S3_SECRET_ACCESS_KEY": "test",
    }.items():
        monkeypatch.setenv(name, value)


def _job(platform: Platform, spec: dict[str, Any], executor: str) -> Job:
    with platform.sessions() as session:
        team = _team(session)
        job = jobs.create_system_job(session, team, "finetune", spec)
        job.executor = executor
        session.commit()
        return job


def _team(session: Session) -> int:
    found = session.scalar(select(Team).where(Team.slug == TEAM))
    return (found or create_team(session, create_user(session), TEAM)).id


def _shape(message: str) -> str:
    # Numbers (losses, timings, adapter versions) differ in value, not in what happened.
    return re.sub(r"[0-9][0-9.e+-]*", "#", message)


def _from_entrypoint(session: Session, job: Job) -> tuple[list[str], list[tuple[int, str, float]]]:
    """The job's event lines that came from the entrypoint, and its metric points."""
    lines = session.scalars(select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.id))
    platform_own = re.compile(r"^(finetune job queued|attempt \d+ started|job succeeded)")
    kept = [_shape(e.message) for e in lines if not platform_own.match(e.message)]
    points = session.scalars(
        select(JobMetric).where(JobMetric.job_id == job.id).order_by(JobMetric.id)
    )
    return kept, [(m.step, m.name, m.value) for m in points]


async def test_a_cluster_pods_events_and_metrics_match_a_local_runs(
    platform: Platform,
    kubelet: Kubelet,
    s3_store: S3Store,
    s3_endpoint: str,
    s3_env: None,
    tmp_path: Path,
) -> None:
    train = await asyncio.to_thread(tiny_train_spec, s3_store)
    with platform.sessions() as session:
        register_base(session, "tiny-base", train["base_source"])
    local = _job(platform, train, "local")
    pod_spec = {**train, "adapter_version": "2"}  # its own adapter version, same training
    cluster = _job(platform, pod_spec, "kubernetes")

    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    settings = Settings(workspace=tmp_path / "local", broker_url=broker, result_backend=broker)
    await asyncio.to_thread(run_finetune_job, platform.sessions, s3_store, settings, local.uid)

    config = OperatorConfig(
        objectStore=ObjectStore(url=s3_store.url, endpointUrl=s3_endpoint),
        apiUrl=platform.api_url,
        jobTokenKey=KEY,
    )
    spec = FineTuneJobSpec.model_validate({"team": TEAM, "jobId": cluster.uid, "train": pod_spec})
    ft = training.finetune("ft-events", NAMESPACE, "uid-1", spec, config)
    manifests = training.build_training(ft, config)
    keys = {"TAILOR_S3_ACCESS_KEY_ID": "test", "TAILOR_S3_SECRET_ACCESS_KEY": "test"}
    store_secret = {
        "kind": "Secret",
        "metadata": {"name": config.objectStore.secretName},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()},
    }
    objects = {(m["kind"], m["metadata"]["name"]): m for m in [*manifests[:-1], store_secret]}
    pod = kubelet.run(manifests[-1], objects)
    await asyncio.to_thread(pod.wait_succeeded)

    with platform.sessions() as session:
        assert session.get_one(Job, local.id).state == JobState.succeeded
        local_lines, local_points = _from_entrypoint(session, local)
        pod_lines, pod_points = _from_entrypoint(session, session.get_one(Job, cluster.id))
    assert pod_lines == local_lines
    assert [p[:2] for p in pod_points] == [p[:2] for p in local_points]
    computed = [
        (a, b) for a, b in zip(pod_points, local_points, strict=True) if a[1] not in MEASURED
    ]
    assert {a[1] for a, _ in computed} >= {"loss", "lr"}
    assert all(math.isclose(a[2], b[2], rel_tol=1e-4, abs_tol=1e-6) for a, b in computed), computed
