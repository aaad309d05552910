"""The worker side of a fine-tune: run the training entrypoint and mirror it into the job."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.adapters.spec import AdapterManifest
from tailor.config import Settings
from tailor.db.models import Job, Team
from tailor.errors import TailorError
from tailor.evaluations.service import auto_evaluation, queue_evaluation
from tailor.finetunes import cluster
from tailor.finetunes.service import with_base_source
from tailor.jobs import service as jobs
from tailor.jobs.attempt import removed_if_interrupted
from tailor.jobs.recorder import JobRecorder
from tailor.k8s import connect
from tailor.queue import make_sender
from tailor.registry.service import register_version, version_prefix
from tailor.storage import ObjectStore
from tailor.train.protocol import (
    EXIT_SPEC_ERROR,
    Launch,
    Relayed,
    entrypoint_args,
    launch,
    local_command,
    log_tail,
)
from tailor.train.spec import TrainSpec


def run_finetune_job(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    settings: Settings,
    job_uid: str,
    stop: threading.Event | None = None,
) -> None:
    """Run (or after a crash resume) the fine-tune `job_uid` to a final state.

    `stop` is the attempt's stop event (`tailor.jobs.attempt`): set, the training stops.
    """
    with sessions.begin() as session:
        job = session.scalars(select(Job).where(Job.uid == job_uid)).one_or_none()
        if job is None:
            return
        if job.executor == "kubernetes":
            # The operator runs it on the cluster and reports each phase to the API.
            if not job.state.final:
                cluster.submit_finetune(session, settings, job, connect())
            return
        if not jobs.begin_attempt(session, job):
            return
        job_id, team_id, spec = job.id, job.team_id, TrainSpec.model_validate(job.spec)
        team_slug = session.get_one(Team, team_id).slug
        try:
            spec = with_base_source(session, spec)
        except TailorError as exc:
            jobs.fail(session, job, exc.detail)
            return
    work_dir = settings.ensure_workspace() / "jobs" / job_uid
    work_dir.mkdir(parents=True, exist_ok=True)
    spec_path = work_dir / "spec.json"
    spec_path.write_text(spec.model_dump_json(indent=2))
    recorder = JobRecorder(sessions, job_id, stop)
    # Interrupted (time limit, a cancel the entrypoint did not heed): the job ends here and
    # nobody resumes it, so its checkpoints go.
    with removed_if_interrupted(store, spec.checkpoint_prefix(job_uid)):
        seen, code = _launch(spec_path, job_uid, spec, recorder, settings, work_dir)
    with sessions.begin() as session:
        job = jobs.lock_job(session, job_id)
        if job.cancel_requested:
            # The entrypoint keeps checkpoints when it stops (a preempted pod resumes from
            # them); a cancel is final, so they go.
            store.delete_prefix(spec.checkpoint_prefix(job_uid))
            jobs.mark_cancelled(session, job)
        elif code == 0 and seen.final is not None and seen.final["event"] == "result":
            result = {k: v for k, v in seen.final.items() if k != "event"}
            register_trained(
                session, store, job, team_slug, result, make_sender(settings), settings
            )
        else:
            jobs.fail(session, job, _failure_reason(seen, code, work_dir))


def _launch(
    spec_path: Path,
    job_uid: str,
    spec: TrainSpec,
    recorder: JobRecorder,
    settings: Settings,
    work_dir: Path,
) -> tuple[Relayed, int]:
    env = {**os.environ, "TAILOR_WORKSPACE": str(settings.workspace)}
    stop_file = work_dir / "STOP"
    run = Launch(
        local_command(spec.num_processes, entrypoint_args(spec_path, job_uid, None, stop_file)),
        env,
        work_dir / "train.log",
        stop_file,
        recorder.cancelled,
        poll_s=1.0,
    )
    return launch(run, recorder.metrics, recorder.log, recorder.progress)


def register_trained(
    session: Session,
    store: ObjectStore,
    job: Job,
    team_slug: str,
    result: dict[str, Any],
    sender: Celery | None = None,
    settings: Settings | None = None,
) -> None:
    """Register the adapter a successful fine-tune stored, finish the job, queue its evaluation."""
    spec = TrainSpec.model_validate(job.spec)
    version = int(spec.adapter_version)
    prefix = version_prefix(team_slug, spec.adapter_name, version)
    stored = AdapterManifest.model_validate_json(store.get_bytes(prefix + "tailor.json"))
    row = register_version(
        session,
        team_id=job.team_id,
        team_slug=team_slug,
        name=spec.adapter_name,
        version=version,
        manifest=stored.model_dump(mode="json"),
        job_id=job.id,
    )
    jobs.succeed(session, job, {**result, "adapter": spec.adapter_name, "version": version})
    if sender is not None:
        # Every fine-tune ends with base-vs-adapter scores: a quick HumanEval subset here,
        # the full 164 problems through POST /evaluations.
        request = auto_evaluation(settings or Settings(), spec.adapter_name, version)
        queue_evaluation(session, session.get_one(Team, job.team_id), row, sender, request)


def finish_trained(store: ObjectStore, sender: Celery | None) -> Callable[[Session, Job], None]:
    """How a fine-tune the cluster ran ends once its workload succeeded: as a local one does."""

    def finish(session: Session, job: Job) -> None:
        slug = session.get_one(Team, job.team_id).slug
        register_trained(session, store, job, slug, {}, sender)

    return finish


def _failure_reason(seen: Relayed, code: int, work_dir: Path) -> str:
    if seen.final is not None and seen.final["event"] == "error":
        return str(seen.final.get("message", "training failed"))
    tail = log_tail(work_dir / "train.log", 5)
    kind = "invalid spec" if code == EXIT_SPEC_ERROR else f"training exited with code {code}"
    return f"{kind}: " + (" | ".join(tail) or "no output; see the worker's log")
