"""Celery tasks: each validates its argument and calls a pipeline function in `tailor/`.

Every job task runs through `tailor.jobs.attempt.run_attempt`: a repeated delivery does
nothing, a cancel or the soft time limit stops the runner and ends the job with a reason, a
crash fails it. The hard time limit kills the pool process; `JobTask.on_failure` (called in
the worker's main process) then fails the job.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from billiard.process import current_process
from celery import Task
from celery.exceptions import TimeLimitExceeded
from celery.signals import worker_process_init, worker_ready, worker_shutdown
from sqlalchemy.orm import Session, sessionmaker

from tailor import queue
from tailor.config import get_settings
from tailor.db.session import engine_for, session_factory
from tailor.jobs.attempt import Policy, fail_at_hard_limit, run_attempt
from tailor.jobs.reaper import start_reaper
from tailor.queue import TASKS
from tailor.services.datasets.run import run_harvest_job, run_harvest_part
from tailor.services.endpoints.sync import SYNC_TASK
from tailor.services.evaluations.run import run_evaluation_job
from tailor.services.finetunes.run import run_finetune_job
from tailor.services.teams import sync as teams_cluster
from tailor.storage import ObjectStore, get_store
from worker.app import app

JobRunner = Callable[[str, threading.Event], None]


@lru_cache
def _sessions() -> sessionmaker[Session]:
    return session_factory(engine_for(get_settings().database_url))


@lru_cache
def _store() -> ObjectStore:
    return get_store(get_settings())


@worker_process_init.connect
def _own_connections(**_: Any) -> None:
    """A pool process opens its own database connections, never its parent's."""
    if _sessions.cache_info().currsize:
        _sessions().kw["bind"].dispose(close=False)
    _sessions.cache_clear()
    engine_for.cache_clear()


_reaper: list[threading.Event] = []


@worker_ready.connect
def _start_reaping(**_: Any) -> None:
    """Requeue the jobs of workers that died, now and then periodically (main process)."""
    _reaper.append(start_reaper(_sessions(), get_settings(), app))


@worker_shutdown.connect
def _stop_reaping(**_: Any) -> None:
    for stop in _reaper:
        stop.set()


def _replace_process() -> None:
    # Only a pool process: the pool starts another, and the job already ended cancelled.
    if current_process().name.startswith("ForkPoolWorker"):
        os.kill(os.getpid(), signal.SIGKILL)


class JobTask(Task):  # type: ignore[misc]
    """A task that runs one job (its first argument is the job's id)."""

    job_kind = ""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """At the hard time limit (the pool killed the process): fail the job."""
        if isinstance(exc, TimeLimitExceeded) and args:
            policy = Policy.of(get_settings(), self.job_kind)
            fail_at_hard_limit(_sessions(), str(args[0]), self.job_kind, policy)


def job_task(kind: str) -> Callable[[JobRunner], Any]:
    """Register `run(job_uid, stop)` as the task of `kind`, run as one attempt at the job."""

    def register(run: JobRunner) -> Any:
        def task(job_uid: str) -> None:
            policy = Policy.of(get_settings(), kind)
            run_attempt(
                _sessions(),
                str(job_uid),
                kind,
                policy,
                lambda stop: run(str(job_uid), stop),
                terminate=_replace_process,
            )

        task.__doc__ = run.__doc__
        return app.task(name=TASKS[kind], base=JobTask, job_kind=kind)(task)

    return register


@job_task("harvest")
def harvest(job_uid: str, stop: threading.Event) -> None:
    """Harvest a dataset (many repositories: fanned out over the workers, then reduced)."""

    def dispatch(index: int) -> None:
        harvest_part.apply_async(args=[job_uid, index])

    run_harvest_job(_sessions(), _store(), get_settings(), job_uid, stop, dispatch, sender=app)


@app.task(name=queue.HARVEST_PART_TASK)
def harvest_part(job_uid: str, index: int) -> None:
    """One repository of a fanned-out harvest; a redelivery after a worker died re-runs it."""
    run_harvest_part(_sessions(), _store(), get_settings(), str(job_uid), int(index))


@job_task("finetune")
def finetune(job_uid: str, stop: threading.Event) -> None:
    """Fine-tune an adapter (resumes from its last checkpoint after a worker died)."""
    run_finetune_job(_sessions(), _store(), get_settings(), job_uid, stop)


@job_task("evaluation")
def evaluate(job_uid: str, stop: threading.Event) -> None:
    """Evaluate an adapter version against its base model."""
    run_evaluation_job(_sessions(), _store(), job_uid, stop)


@job_task("served-check")
def served_check(job_uid: str, stop: threading.Event) -> None:
    """Check a published endpoint over HTTP against its version's evaluated adapter."""
    from tailor.services.endpoints.served_check_run import run_served_check_job

    run_served_check_job(_sessions(), _store(), get_settings(), job_uid, stop)


def _run_adapter_job(kind: str, job_uid: str, stop: threading.Event) -> None:
    from tailor.services.adapter_jobs.run import run_adapter_job

    run_adapter_job(_sessions(), _store(), get_settings(), kind, job_uid, stop=stop)


@job_task("adapter-compose")
def adapter_compose(job_uid: str, stop: threading.Event) -> None:
    """Compose adapter versions into a new version (then queue its evaluation)."""
    _run_adapter_job("adapter-compose", job_uid, stop)


@job_task("adapter-transfer")
def adapter_transfer(job_uid: str, stop: threading.Event) -> None:
    """Transfer an adapter version to another base (then queue its evaluation)."""
    _run_adapter_job("adapter-transfer", job_uid, stop)


@job_task("adapter-import")
def adapter_import(job_uid: str, stop: threading.Event) -> None:
    """Validate an uploaded adapter against its base and register it."""
    _run_adapter_job("adapter-import", job_uid, stop)


@job_task("adapter-export")
def adapter_export(job_uid: str, stop: threading.Event) -> None:
    """Merge an adapter version into its base and export the checkpoint."""
    _run_adapter_job("adapter-export", job_uid, stop)


@app.task(
    name=SYNC_TASK,
    autoretry_for=(Exception,),  # an unreachable cluster: try again, the state converges
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=20,
)
def endpoint_sync(team_id: int, name: str) -> None:
    """Make the team's InferenceEndpoint match what its endpoint serves now (cluster mode)."""
    from tailor.k8s import connect
    from tailor.services.endpoints.sync import sync_endpoint

    sync_endpoint(_sessions(), get_settings(), int(team_id), str(name), connect())


@app.task(
    name=teams_cluster.SYNC_TASK,
    autoretry_for=(Exception,),  # an unreachable cluster: try again, the state converges
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=20,
)
def team_sync(slug: str) -> None:
    """Make the team's Team resource match the database (cluster mode)."""
    from tailor.k8s import connect

    teams_cluster.sync_team(_sessions(), str(slug), connect())


@app.task(
    name=queue.CONTEXT_TASK,
    autoretry_for=(Exception,),  # an unreachable store: try again, the index converges
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=10,
)
def context_build(team_id: int) -> None:
    """Rebuild the team's code index from its datasets (after a harvest or a removal)."""
    from tailor.services.datasets.context import build_team_context

    build_team_context(_sessions(), _store(), int(team_id))


@app.task(name=queue.RESYNC_TASK)
def team_resync() -> None:
    """Re-apply every team's Team; report Teams the database does not know (beat, periodic)."""
    from tailor.k8s import connect

    teams_cluster.resync_teams(_sessions(), connect())
