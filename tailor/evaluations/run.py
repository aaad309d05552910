"""The worker side of an evaluation: score, store the report on the job and the version."""

from __future__ import annotations

import json
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.catalog import service as catalog
from tailor.db.models import AdapterVersion, Job
from tailor.errors import TailorError
from tailor.evaluate.runner import Progress
from tailor.evaluate.spec import EvalSpec
from tailor.jobs import service as jobs
from tailor.jobs.recorder import JobRecorder
from tailor.storage import ObjectStore


def run_evaluation_job(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    job_uid: str,
    stop: threading.Event | None = None,
) -> None:
    """Run the evaluation `job_uid` to a final state (`stop`: see `tailor.jobs.attempt`)."""
    from tailor.evaluate.entrypoint import evaluate
    from tailor.evaluate.fim_tasks import DatasetError
    from tailor.evaluate.runner import EvaluationError
    from tailor.evaluate.sandbox import SandboxUnavailable

    with sessions.begin() as session:
        job = session.scalars(select(Job).where(Job.uid == job_uid)).one_or_none()
        if job is None or not jobs.begin_attempt(session, job):
            return
        job_id, payload = job.id, dict(job.spec)
        spec = EvalSpec.model_validate(payload["eval"])
        try:
            base = catalog.resolve(session, spec.base_model)
        except TailorError as exc:
            jobs.fail(session, job, exc.detail)
            return
        spec = spec.model_copy(update={"base_source": base.source})
    recorder = JobRecorder(sessions, job_id, stop)
    try:
        report = evaluate(spec, store, progress=_stopping(recorder))
    except EvaluationCancelled:
        recorder.finish(jobs.mark_cancelled)
        return
    except (EvaluationError, DatasetError, SandboxUnavailable) as exc:
        reason = str(exc)
        recorder.finish(lambda session, job: jobs.fail(session, job, reason))
        return
    result = report.model_dump(mode="json")
    with sessions.begin() as session:
        job = jobs.lock_job(session, job_id)
        if job.cancel_requested:  # asked after the last progress report: the scores go
            jobs.mark_cancelled(session, job)
            return
        version = session.get(AdapterVersion, payload.get("adapter_version_id"))
        if version is not None:
            version.evaluation = result
            _annotate_manifest(store, version.prefix, result)
        jobs.succeed(session, job, result)


class EvaluationCancelled(Exception):
    """Someone cancelled the evaluation while it ran (not an error)."""


def _stopping(recorder: JobRecorder) -> Progress:
    """The recorder's progress callback, which stops the evaluation once it is cancelled."""

    def progress(fraction: float, message: str) -> None:
        if recorder.progress_unless_cancelled(fraction, message):
            raise EvaluationCancelled

    return progress


def _annotate_manifest(store: ObjectStore, prefix: str, report: dict[str, object]) -> None:
    # tailor.json travels with the adapter: keep its evaluation in step with the registry.
    key = prefix + "tailor.json"
    if store.exists(key):
        manifest = json.loads(store.get_bytes(key))
        manifest["evaluation"] = report
        store.put_bytes(key, json.dumps(manifest, indent=2).encode())
