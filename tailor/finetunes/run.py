"""The worker side of a fine-tune: run the training entrypoint and mirror it into the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
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
from tailor.finetunes.events import EXIT_SPEC_ERROR, parse
from tailor.finetunes.service import with_base_source
from tailor.jobs import service as jobs
from tailor.jobs.attempt import removed_if_interrupted
from tailor.jobs.recorder import JobRecorder
from tailor.queue import make_sender
from tailor.registry.service import register_version, version_prefix
from tailor.storage import ObjectStore
from tailor.train.spec import TrainSpec


def train_command(spec_path: Path, job_uid: str, processes: int) -> list[str]:
    """The entrypoint command: torchrun for several processes, plain Python for one.

    Exit status: 0 done, 1 failed, 3 (EXIT_SPEC_ERROR) spec can never work, 4 stopped.
    """
    entry = ["-m", "tailor.cli.main", "train", "run", str(spec_path), "--job-id", job_uid]
    if processes > 1:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(processes),
            *entry,
        ]
    return [sys.executable, *entry]


def _watch_cancel(
    proc: subprocess.Popen[str], recorder: JobRecorder, stopped: threading.Event
) -> None:
    while not stopped.wait(1.0):
        if recorder.cancelled():
            # The entrypoint stops at the next step on SIGTERM and writes no adapter.
            os.killpg(proc.pid, signal.SIGTERM)
            return


def _mirror(proc: subprocess.Popen[str], recorder: JobRecorder) -> dict[str, Any]:
    outcome: dict[str, Any] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        event = parse(line)
        if event is None:
            continue
        kind = event.pop("event")
        if kind == "metrics":
            recorder.metrics(event)
        elif kind == "progress":
            recorder.progress(float(event.get("fraction", 0.0)), str(event.get("message", "")))
        elif kind == "log":
            recorder.log(str(event.get("message", "")), str(event.get("level", "info")))
        elif kind in ("result", "error"):
            outcome[kind] = event
    return outcome


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
                cluster.submit_finetune(session, settings, job, cluster.connect())
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
        outcome, code = _launch(spec_path, job_uid, spec, recorder, settings, work_dir)
    with sessions.begin() as session:
        job = jobs.lock_job(session, job_id)
        if job.cancel_requested:
            # The entrypoint keeps checkpoints when it stops (a preempted pod resumes from
            # them); a cancel is final, so they go.
            store.delete_prefix(spec.checkpoint_prefix(job_uid))
            jobs.mark_cancelled(session, job)
        elif code == 0 and "result" in outcome:
            register_trained(
                session, store, job, team_slug, outcome["result"], make_sender(settings), settings
            )
        else:
            jobs.fail(session, job, _failure_reason(outcome, code, work_dir))


def _launch(
    spec_path: Path,
    job_uid: str,
    spec: TrainSpec,
    recorder: JobRecorder,
    settings: Settings,
    work_dir: Path,
) -> tuple[dict[str, Any], int]:
    env = {**os.environ, "TAILOR_WORKSPACE": str(settings.workspace)}
    with (work_dir / "train.log").open("a") as log:
        proc = subprocess.Popen(
            train_command(spec_path, job_uid, spec.num_processes),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            start_new_session=True,
        )
        stopped = threading.Event()
        watcher = threading.Thread(
            target=_watch_cancel, args=(proc, recorder, stopped), daemon=True
        )
        watcher.start()
        try:
            outcome = _mirror(proc, recorder)
            code = proc.wait()
        finally:
            stopped.set()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    return outcome, code


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


def _failure_reason(outcome: dict[str, Any], code: int, work_dir: Path) -> str:
    if "error" in outcome:
        return str(outcome["error"].get("message", "training failed"))
    tail = (work_dir / "train.log").read_text(errors="replace").strip().splitlines()[-5:]
    kind = "invalid spec" if code == EXIT_SPEC_ERROR else f"training exited with code {code}"
    return f"{kind}: " + (" | ".join(tail) or "no output; see the worker's log")
