"""The worker side of an evaluation: score, store the report on the job and the version."""

from __future__ import annotations

import json
import threading
from typing import Any, NamedTuple

from sqlalchemy.orm import Session, sessionmaker

from tailor.db.models import AdapterVersion, Job
from tailor.jobs import service as jobs
from tailor.jobs.recorder import JobRecorder
from tailor.jobs.runner import Stage, run_job
from tailor.services.base_models import service as catalog
from tailor.stages.evaluate.compare import Progress
from tailor.stages.evaluate.spec import EvalSpec
from tailor.storage import ObjectStore


class _Evaluation(NamedTuple):
    """An evaluation job as read at its start."""

    spec: EvalSpec  # its base resolved to the catalog's source
    version_id: int | None  # the adapter version whose scores these are


def run_evaluation_job(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    job_uid: str,
    stop: threading.Event | None = None,
) -> None:
    """Run the evaluation `job_uid` to a final state (`stop`: see `tailor.jobs.attempt`)."""
    from tailor.stages.evaluate.compare import EvaluationError
    from tailor.stages.evaluate.entrypoint import evaluate
    from tailor.stages.evaluate.fim_tasks import DatasetError
    from tailor.stages.evaluate.sandbox import SandboxUnavailable

    def read(session: Session, job: Job) -> _Evaluation:
        spec = EvalSpec.model_validate(job.spec["eval"])
        base = catalog.resolve(session, spec.base_model)  # gone from the catalog: fails
        source = spec.model_copy(update={"base_source": base.source})
        return _Evaluation(source, job.spec.get("adapter_version_id"))

    def work(e: _Evaluation, recorder: JobRecorder) -> dict[str, Any]:
        report = evaluate(e.spec, store, progress=stopping(recorder))
        return report.model_dump(mode="json")

    def finish(session: Session, job: Job, e: _Evaluation, result: dict[str, Any]) -> None:
        version = session.get(AdapterVersion, e.version_id)
        if version is not None:
            version.evaluation = result
            _annotate_manifest(store, version.prefix, result)
        jobs.succeed(session, job, result)

    expected = (EvaluationError, DatasetError, SandboxUnavailable)
    stage = Stage(read, work, finish, cancelled=(EvaluationCancelled,), expected=expected)
    run_job(sessions, job_uid, stage, stop)


class EvaluationCancelled(Exception):
    """Someone cancelled the evaluation while it ran (not an error)."""


def stopping(recorder: JobRecorder) -> Progress:
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
