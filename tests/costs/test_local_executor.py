"""A fine-tune through the local executor records what it used: on this CPU-only machine no
GPU (so no GPU-seconds and no price), its CPU time, and its cost beside its estimate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.models import Dataset, Job, JobState, Role, Team
from tailor.demo.sample_data import write_dataset
from tailor.demo.tiny import tiny_base_cached
from tailor.jobs.usage import local_gpu_count
from tailor.services.costs import service as costs
from tailor.services.finetunes.run import run_finetune_job
from tailor.services.finetunes.service import start_finetune
from tailor.stages.train.spec import TrainSpec
from tailor.storage import get_store
from tailor.tenancy import Principal, TeamAccess
from tests.conftest import create_ready_dataset, create_tenant, register_base

CACHE_ROOT = Path(os.environ.get("TAILOR_TEST_CACHE", "/tmp/tailor-test-cache"))
SOURCES = Path(__file__).resolve().parents[2] / "tailor" / "stages" / "train"


@pytest.mark.slow
def test_a_local_cpu_finetune_records_cpu_seconds_no_gpu_and_its_cost(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    store = get_store(settings)  # the one the training subprocess finds from the settings
    assert local_gpu_count() == 0  # this machine kind has no GPU (the test says what it saw)
    with sessions() as session:
        tenant = create_tenant(session)
        register_base(session, "tiny-base", tiny_base_cached(CACHE_ROOT))
        create_ready_dataset(session, tenant.team)
        dataset = session.scalars(select(Dataset).where(Dataset.team_id == tenant.team.id)).one()
        dataset.stats = {"files_kept": 8, "tokens_estimate": 20_000}
        session.commit()
        write_dataset(store, tenant.slug, "ds-1", sorted(SOURCES.glob("*.py"))[:8], root=SOURCES)
        principal = Principal(user_id=tenant.owner.id, email=tenant.owner.email)
        access = TeamAccess(session.get_one(Team, tenant.team.id), Role.owner, principal)
        spec = TrainSpec(base_model="tiny-base", team=tenant.slug, dataset_id="ds-1",
                         adapter_name="style", method="lora", max_steps=2, seq_len=64,
                         grad_accum=1)  # fmt: skip
        started = start_finetune(session, access, spec, Celery(), settings)
        session.commit()

    run_finetune_job(sessions, store, settings, started.id)

    with sessions() as session:
        job = session.scalars(select(Job).where(Job.uid == started.id)).one()
        assert job.state == JobState.succeeded, job.error
        assert job.usage["gpus"] == 0 and job.usage["gpu_type"] is None
        assert job.usage["gpu_seconds"] == 0.0
        assert job.usage["cpu_seconds"] > 0.0  # the training subprocess's CPU time
        assert job.usage["wall_seconds"] >= job.usage["cpu_seconds"] / os.cpu_count()  # type: ignore[operator]
        assert started.estimate["basis"] == "cpu"
        cost = job.result["cost"]
        assert (cost["gpu_hours"], cost["cost"]) == (0.0, 0.0)
        assert cost["estimate"]["tokens"] == 2 * 64  # max_steps x seq_len, beside the figure
        spend = costs.team_spend(session, access, settings)
        assert spend.cpu_hours > 0 and spend.total == 0.0
        assert [k.kind for k in spend.by_kind] == ["finetune"]
