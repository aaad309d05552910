"""The worker side of a fine-tune: run the training entrypoint and mirror it into the job."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.models import Job, Team
from tailor.jobs import service as jobs
from tailor.jobs.attempt import removed_if_interrupted
from tailor.jobs.recorder import JobRecorder
from tailor.jobs.runner import Stage, run_job
from tailor.jobs.usage import local_gpu_count
from tailor.k8s import connect
from tailor.queue import make_sender
from tailor.services.adapters.service import register_version, version_prefix
from tailor.services.costs import service as costs
from tailor.services.evaluations.service import auto_evaluation, queue_evaluation
from tailor.services.finetunes import submit
from tailor.services.finetunes.service import with_base_source
from tailor.stages.package.spec import AdapterManifest
from tailor.stages.train.protocol import (
    EXIT_SPEC_ERROR,
    Launch,
    Relayed,
    entrypoint_args,
    launch,
    local_command,
    log_tail,
)
from tailor.stages.train.spec import TrainSpec
from tailor.storage import ObjectStore


class _FineTune(NamedTuple):
    """A fine-tune job as read at its start."""

    spec: TrainSpec  # its base resolved to the catalog's files
    team: str


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

    def begin(session: Session, job: Job) -> bool:
        if job.executor == "kubernetes":
            # The operator runs it on the cluster and reports each phase to the API.
            if not job.state.final:
                submit.submit_finetune(session, settings, job, connect())
            return False
        return jobs.begin_attempt(session, job)

    def read(session: Session, job: Job) -> _FineTune:
        spec = with_base_source(session, TrainSpec.model_validate(job.spec))
        return _FineTune(spec, session.get_one(Team, job.team_id).slug)

    work_dir = settings.ensure_workspace() / "jobs" / job_uid

    def work(ft: _FineTune, recorder: JobRecorder) -> tuple[Relayed, int]:
        spec = ft.spec
        work_dir.mkdir(parents=True, exist_ok=True)
        spec_path = work_dir / "spec.json"
        spec_path.write_text(spec.model_dump_json(indent=2))
        # Interrupted (time limit, a cancel the entrypoint did not heed): the job ends here
        # and nobody resumes it, so its checkpoints go.
        with removed_if_interrupted(store, spec.checkpoint_prefix(job_uid)):
            return _launch(spec_path, job_uid, spec, recorder, settings, work_dir)

    def finish(session: Session, job: Job, ft: _FineTune, ran: tuple[Relayed, int]) -> None:
        seen, code = ran
        if code == 0 and seen.final is not None and seen.final["event"] == "result":
            result = {k: v for k, v in seen.final.items() if k != "event"}
            sender = make_sender(settings)
            register_trained(session, store, job, ft.team, result, sender, settings)
        else:
            jobs.fail(session, job, _failure_reason(seen, code, work_dir))

    def discard(ft: _FineTune, _ran: tuple[Relayed, int] | None) -> None:
        # The entrypoint keeps checkpoints when it stops (a preempted pod resumes from
        # them); a cancel is final, so they go.
        store.delete_prefix(ft.spec.checkpoint_prefix(job_uid))

    def devices(ft: _FineTune) -> tuple[str | None, int]:
        # The entrypoint trains on every local GPU its processes get (one each), else the CPU.
        wanted = ft.spec.num_processes if ft.spec.method == "full" else 1
        gpus = min(wanted, local_gpu_count())
        return (settings.local_gpu_type, gpus) if gpus else (None, 0)

    stage = Stage(read, work, finish, discard=discard, begin=begin, devices=devices)
    run_job(sessions, job_uid, stage, stop)


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
    cost = costs.job_cost(session, job, settings or Settings())
    jobs.succeed(
        session,
        job,
        {
            **result,
            "adapter": spec.adapter_name,
            "version": version,
            # The final figure beside the estimate it started with.
            "cost": cost.model_dump(mode="json") if cost else None,
        },
    )
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
