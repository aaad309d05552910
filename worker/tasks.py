"""Celery tasks: each validates its argument and calls a pipeline function in `tailor/`."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy.orm import Session, sessionmaker

from tailor.config import get_settings
from tailor.datasets.run import run_harvest_job
from tailor.db.session import engine_for, session_factory
from tailor.evaluations.run import run_evaluation_job
from tailor.finetunes.run import run_finetune_job
from tailor.jobs.recorder import failing_on_crash
from tailor.storage import ObjectStore, get_store
from worker.app import app


@lru_cache
def _sessions() -> sessionmaker[Session]:
    return session_factory(engine_for(get_settings().database_url))


@lru_cache
def _store() -> ObjectStore:
    return get_store(get_settings())


@app.task(name="tailor.harvest")
def harvest(job_uid: str) -> None:
    """Harvest a dataset (redelivered to another worker if this one dies)."""
    with failing_on_crash(_sessions(), job_uid):
        run_harvest_job(_sessions(), _store(), get_settings(), job_uid)


@app.task(name="tailor.finetune")
def finetune(job_uid: str) -> None:
    """Fine-tune an adapter (resumes from its last checkpoint if redelivered)."""
    with failing_on_crash(_sessions(), job_uid):
        run_finetune_job(_sessions(), _store(), get_settings(), job_uid)


@app.task(name="tailor.evaluate")
def evaluate(job_uid: str) -> None:
    """Evaluate an adapter version against its base model."""
    with failing_on_crash(_sessions(), job_uid):
        run_evaluation_job(_sessions(), _store(), job_uid)


@app.task(name="tailor.adapter.compose")
def adapter_compose(job_uid: str) -> None:
    """Compose adapter versions into a new version (then queue its evaluation)."""
    from tailor.registry.run import run_compose_job

    run_compose_job(_sessions(), _store(), get_settings(), job_uid)


@app.task(name="tailor.adapter.transfer")
def adapter_transfer(job_uid: str) -> None:
    """Transfer an adapter version to another base (then queue its evaluation)."""
    from tailor.registry.run import run_transfer_job

    run_transfer_job(_sessions(), _store(), get_settings(), job_uid)


@app.task(name="tailor.adapter.import")
def adapter_import(job_uid: str) -> None:
    """Validate an uploaded adapter against its base and register it."""
    from tailor.registry.run import run_import_job

    run_import_job(_sessions(), _store(), get_settings(), job_uid)


@app.task(name="tailor.adapter.export")
def adapter_export(job_uid: str) -> None:
    """Merge an adapter version into its base and export the checkpoint."""
    from tailor.registry.run import run_export_job

    run_export_job(_sessions(), _store(), get_settings(), job_uid)


@app.task(
    name="tailor.endpoint.sync",
    autoretry_for=(Exception,),  # an unreachable cluster: try again, the state converges
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=20,
)
def endpoint_sync(team_id: int, name: str) -> None:
    """Make the team's InferenceEndpoint match what its endpoint serves now (cluster mode)."""
    from tailor.finetunes.cluster import connect
    from tailor.registry.cluster import sync_endpoint

    sync_endpoint(_sessions(), get_settings(), int(team_id), str(name), connect())
