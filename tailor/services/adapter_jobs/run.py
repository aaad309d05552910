"""The worker side of adapter operations: run the stage, store the version, register it.

Inputs are read through the registry (its rows say which base and dataset a version has;
training's `tailor.json` has another shape), fetched into a clean directory holding only
the adapter files, and checked against the checksum the registry recorded. A new version
is stored first and registered after, in one transaction with its job's success and the
evaluation it queues; a failure on the way removes the files again.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.models import Adapter, AdapterVersion, Job, JobState, Team
from tailor.errors import TailorError
from tailor.jobs import service as jobs
from tailor.jobs.recorder import JobRecorder
from tailor.jobs.runner import Stage, run_job
from tailor.queue import make_sender
from tailor.services.adapters.service import next_version, register_version
from tailor.services.base_models.service import resolve_source
from tailor.services.evaluations.service import auto_evaluation, queue_evaluation
from tailor.stages.package.artifacts import (
    adapter_prefix,
    dir_checksum,
    download_prefix,
    save_version,
    write_manifest,
)
from tailor.stages.package.errors import ChecksumMismatchError, VersionExistsError
from tailor.stages.package.spec import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    AdapterManifest,
    CompositionSpec,
    TransferSpec,
    format_ref,
)
from tailor.stages.package.validate import write_canonical_config
from tailor.stages.serve.model_files import fetch_model
from tailor.storage import ObjectStore, StoreError

# The quick HumanEval subset every new version is scored on, as after a fine-tune.
SAVE_ATTEMPTS = 5
# Failures a person can act on: the job fails with their message and the worker goes on.
EXPECTED = (TailorError, StoreError, OSError, ValueError)


@dataclass(frozen=True)
class Started:
    """A job this worker runs now, read once at its start."""

    job_id: int
    uid: str
    team_id: int
    team: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class NewVersion:
    """What an operation produced: a version directory and what to do with it."""

    name: str
    directory: Path
    eval_dataset_id: str | None


Operation = Callable[[Started, ObjectStore, Settings, JobRecorder, Path], "NewVersion | dict"]


@dataclass(frozen=True)
class Saved:
    """A new version stored under its number, not yet registered."""

    new: NewVersion
    version: int
    manifest: AdapterManifest


def run_operation(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    settings: Settings,
    job_uid: str,
    operation: Operation,
    sender: Celery | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run one adapter operation job to a final state (`stop`: see `tailor.jobs.attempt`)."""

    def begin(session: Session, job: Job) -> bool:
        if jobs.begin_attempt(session, job):
            return True
        if job.state.final and job.spec.get("staging"):
            store.delete_prefix(job.spec["staging"])  # an upload cancelled while queued
        return False

    def read(session: Session, job: Job) -> Started:
        team = session.get_one(Team, job.team_id)
        return Started(job.id, job.uid, job.team_id, team.slug, dict(job.spec))

    def work(started: Started, recorder: JobRecorder) -> Saved | dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix=f"tailor-{job_uid}-") as tmp:
            outcome = operation(started, store, settings, recorder, Path(tmp))
            if not isinstance(outcome, NewVersion):
                return outcome
            return Saved(outcome, *_save(sessions, store, started, outcome))

    def finish(session: Session, job: Job, started: Started, done: Saved | dict[str, Any]) -> None:
        if isinstance(done, Saved):
            _register(session, store, job, started, done, sender or make_sender(settings), settings)
        else:
            jobs.succeed(session, job, done)

    def discard(started: Started, done: Saved | dict[str, Any] | None) -> None:
        if isinstance(done, Saved):
            store.delete_prefix(adapter_prefix(started.team, done.new.name, done.version))

    stage = Stage(
        read, work, finish, expected=EXPECTED, reason=_reason, discard=discard, begin=begin
    )
    run_job(sessions, job_uid, stage, stop)


def _reason(exc: Exception) -> str:
    if isinstance(exc, TailorError):
        return exc.detail
    return f"{type(exc).__name__}: {exc}"


def _save(
    sessions: sessionmaker[Session], store: ObjectStore, started: Started, new: NewVersion
) -> tuple[int, AdapterManifest]:
    """Store the directory under the next free version number (versions are immutable)."""
    for _ in range(SAVE_ATTEMPTS):
        with sessions.begin() as session:
            version = next_version(session, started.team_id, new.name)
            reserved = reserved_versions(session, started.team_id, new.name)
        while version in reserved:
            version += 1
        try:
            return version, save_version(store, started.team, new.name, version, new.directory)
        except VersionExistsError:
            continue  # another job stored this number a moment ago: take the next one
    raise VersionExistsError(f"could not find a free version number for adapter '{new.name}'")


def reserved_versions(session: Session, team_id: int, name: str) -> set[int]:
    """Numbers that fine-tunes still in flight took for adapter `name` when they started."""
    pending = session.scalars(
        select(Job).where(
            Job.team_id == team_id,
            Job.kind == "finetune",
            Job.state.in_([JobState.queued, JobState.running]),
        )
    )
    return {
        int(job.spec["adapter_version"])
        for job in pending
        if job.spec.get("adapter_name") == name and str(job.spec.get("adapter_version")).isdigit()
    }


def _register(
    session: Session,
    store: ObjectStore,
    job: Job,
    started: Started,
    saved: Saved,
    sender: Celery,
    settings: Settings,
) -> None:
    """Register a stored version, queue its evaluation and finish the job, in one transaction."""
    new, version, manifest = saved.new, saved.version, saved.manifest
    try:
        row = register_version(
            session,
            team_id=started.team_id,
            team_slug=started.team,
            name=new.name,
            version=version,
            manifest=manifest.model_dump(mode="json"),
            job_id=started.job_id,
        )
        evaluation = _queue_evaluation(session, job, row, new, sender, settings)
        result = {
            "adapter": new.name,
            "version": version,
            "parents": manifest.parents,
            "evaluation_job": evaluation,
        }
        jobs.succeed(session, job, result)
    except BaseException:  # an interruption too (JobInterrupted)
        # A version the registry does not know must not linger.
        store.delete_prefix(adapter_prefix(started.team, new.name, version))
        raise


def _queue_evaluation(
    session: Session,
    job: Job,
    row: AdapterVersion,
    new: NewVersion,
    sender: Celery,
    settings: Settings,
) -> str | None:
    """Queue the evaluation every new version gets; None when no dataset is known."""
    dataset = new.eval_dataset_id or row.dataset_uid
    if not dataset:
        jobs.log(
            session,
            job,
            f"{new.name}@{row.version} is not evaluated: no dataset is known for it; start one "
            "with POST /evaluations and a dataset_id",
            level="warning",
        )
        return None
    request = auto_evaluation(settings, new.name, row.version, dataset)
    team = session.get_one(Team, job.team_id)
    return queue_evaluation(session, team, row, sender, request).id


# --- fetching inputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """A registered version fetched into a clean local directory."""

    ref: str
    path: Path
    base_model: str
    base_revision: str | None


def _row(sessions: sessionmaker[Session], team_id: int, name: str, version: int) -> AdapterVersion:
    with sessions() as session:
        row = session.scalar(
            select(AdapterVersion)
            .join(Adapter, Adapter.id == AdapterVersion.adapter_id)
            .where(Adapter.team_id == team_id, Adapter.name == name)
            .where(AdapterVersion.version == version)
        )
        if row is None:
            raise TailorError(f"adapter {name}@{version} was deleted before this job ran")
        session.expunge(row)
        return row


@contextmanager
def fetched(store: ObjectStore, name: str, row: AdapterVersion, work: Path) -> Iterator[Fetched]:
    """The version's adapter files, checked, with a `tailor.json` written from its row."""
    ref = format_ref(name, row.version)
    raw, clean = work / f"{ref}-raw", work / f"{ref}-clean"
    try:
        if not download_prefix(store, row.prefix, raw):
            raise StoreError(f"the files of {ref} are missing from the store ({row.prefix})")
        if row.checksum and dir_checksum(raw) != row.checksum:
            raise ChecksumMismatchError(
                f"{ref} is corrupted in the store: its files no longer hash to {row.checksum}; "
                "restore it from a backup or train it again"
            )
        clean.mkdir(parents=True)
        for file_name in (WEIGHTS_FILE, CONFIG_FILE):
            if (raw / file_name).is_file():  # validation names a missing file clearly
                shutil.copyfile(raw / file_name, clean / file_name)
        if all((clean / f).is_file() for f in (WEIGHTS_FILE, CONFIG_FILE)):
            write_canonical_config(clean)  # a version stored before imports were canonical
        write_manifest(
            clean,
            AdapterManifest(
                base_model=row.base_model,
                base_revision=row.base_revision,
                dataset_id=row.dataset_uid,
            ),
        )
        yield Fetched(ref, clean, row.base_model, row.base_revision)
    finally:
        shutil.rmtree(raw, ignore_errors=True)
        shutil.rmtree(clean, ignore_errors=True)


def base_dir(settings: Settings, sessions: sessionmaker[Session], name: str) -> Path:
    """A local directory holding catalog base `name` (downloaded once into the workspace).

    Only the source the catalog holds for the name is ever loaded.
    """
    source, _revision = resolve_source(sessions, name)
    return fetch_model(source, settings.workspace / "models")


# --- the four operations ----------------------------------------------------------------------


def compose(
    started: Started, store: ObjectStore, settings: Settings, recorder: JobRecorder, work: Path
) -> NewVersion:
    """Combine the inputs with PEFT's add_weighted_adapter into a new version directory."""
    from tailor.stages.package.compose import compose_adapters

    spec = CompositionSpec.model_validate(started.spec["composition"])
    out = work / "composed"
    sessions = recorder.sessions
    with ExitStack() as stack:
        inputs: dict[str, Fetched] = {}
        for item in spec.adapters:
            name, version = item.ref.split("@")
            row = _row(sessions, started.team_id, name, int(version))
            inputs[item.ref] = stack.enter_context(fetched(store, name, row, work))
        recorder.progress(0.2, f"composing {', '.join(inputs)} ({spec.combination_type})")
        base = base_dir(settings, sessions, next(iter(inputs.values())).base_model)
        compose_adapters(spec, {ref: f.path for ref, f in inputs.items()}, base, out)
    recorder.progress(0.8, "storing the composed version")
    return NewVersion(started.spec["name"], out, started.spec.get("eval_dataset_id"))


def transfer(
    started: Started, store: ObjectStore, settings: Settings, recorder: JobRecorder, work: Path
) -> NewVersion:
    """Check the target base and re-home the source version on it."""
    from tailor.stages.package.transfer import transfer_adapter

    source = started.spec["source"]
    spec = TransferSpec.model_validate(started.spec["transfer"])
    row = _row(recorder.sessions, started.team_id, source["name"], int(source["version"]))
    out = work / "transferred"
    with fetched(store, source["name"], row, work) as src:
        recorder.progress(0.2, f"checking {spec.target_base} against {src.base_model}")
        transfer_adapter(
            src.path,
            base_dir(settings, recorder.sessions, src.base_model),
            base_dir(settings, recorder.sessions, spec.target_base),
            spec,
            src.ref,
            out,
        )
    return NewVersion(started.spec["target_name"], out, started.spec.get("eval_dataset_id"))


def import_upload(
    started: Started, store: ObjectStore, settings: Settings, recorder: JobRecorder, work: Path
) -> NewVersion:
    """Validate the staged upload against its base (PEFT config, shapes) into a version."""
    from tailor.stages.package.validate import import_adapter

    staging = started.spec["staging"]
    upload = work / "upload"
    try:
        download_prefix(store, staging, upload)
        recorder.progress(0.2, f"validating the upload against {started.spec['base_model']}")
        out = work / "imported"
        import_adapter(
            upload,
            base_dir(settings, recorder.sessions, started.spec["base_model"]),
            out,
            base_model=started.spec["base_model"],
            base_revision=started.spec.get("base_revision"),
            work_dir=work / "unpack",
        )
    finally:
        store.delete_prefix(staging)  # the upload is either a version now or refused
    return NewVersion(started.spec["name"], out, started.spec.get("eval_dataset_id"))


def export(
    started: Started, store: ObjectStore, settings: Settings, recorder: JobRecorder, work: Path
) -> dict[str, Any]:
    """Merge the version into its base and upload the sharded checkpoint; the job's result."""
    from tailor.stages.package.merge import merge_adapter, upload_export

    name, version = started.spec["name"], int(started.spec["version"])
    row = _row(recorder.sessions, started.team_id, name, version)
    with fetched(store, name, row, work) as src:
        recorder.progress(0.2, f"merging {src.ref} into {src.base_model}")
        checkpoint = merge_adapter(
            base_dir(settings, recorder.sessions, src.base_model),
            src.path,
            work / "merged",
            max_shard_size=started.spec.get("max_shard_size", "5GB"),
        )
    recorder.progress(0.7, f"uploading {checkpoint.shards} shard(s)")
    keys = upload_export(store, started.team, name, version, checkpoint)
    return {
        "adapter": format_ref(name, version),
        "prefix": keys[0].rsplit("/", 1)[0] + "/",
        "files": [k.rsplit("/", 1)[1] for k in keys],
        "shards": checkpoint.shards,
        "dtype": checkpoint.dtype,
    }


# The adapter operations by job kind: what each worker task runs through `run_operation`.
OPERATIONS: dict[str, Operation] = {
    "adapter-compose": compose,  # adapters composed into a new version, then evaluated
    "adapter-transfer": transfer,  # a version moved onto another base, then evaluated
    "adapter-import": import_upload,  # a staged upload checked against its base, then evaluated
    "adapter-export": export,  # a version merged into its base, exported to the team's store
}


def run_adapter_job(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    settings: Settings,
    kind: str,
    job_uid: str,
    sender: Celery | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run the adapter job `job_uid` of `kind` (a key of OPERATIONS) to a final state."""
    run_operation(sessions, store, settings, job_uid, OPERATIONS[kind], sender, stop)
