"""Starting, listing, cancelling and deleting harvests; the caller's transaction commits."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor import audit
from tailor.config import JOB_STALE_AFTER_S
from tailor.db.models import Dataset, Job, JobState, Repository
from tailor.errors import InvalidInput
from tailor.jobs import service as jobs
from tailor.pagination import paginate
from tailor.queue import TASKS, send_after_commit
from tailor.services.datasets.schemas import DatasetOut
from tailor.stages.harvest.outcome import empty_reason
from tailor.stages.harvest.spec import HarvestSpec
from tailor.storage import ObjectStore, team_prefix
from tailor.tenancy import TeamAccess, owned, team_select

HARVEST_TASK = TASKS["harvest"]


def _repository_names(session: Session, access: TeamAccess, wanted: list[str] | None) -> list[str]:
    registered = list(
        session.scalars(
            team_select(Repository, access)
            .with_only_columns(Repository.name)
            .order_by(Repository.id)
        )
    )
    if not registered:
        raise InvalidInput(f"team '{access.team.slug}' has no repositories: register one first")
    if wanted is None:
        return registered
    unknown = sorted(set(wanted) - set(registered))
    if unknown:
        raise InvalidInput(f"unknown repositories: {', '.join(unknown)}", field="repositories")
    return wanted


def start_harvest(
    session: Session, access: TeamAccess, spec: HarvestSpec, sender: Celery
) -> DatasetOut:
    """Queue a harvest of some or all of the team's repositories into a new dataset."""
    names = _repository_names(session, access, spec.repositories)
    job = jobs.create_job(session, access, "harvest", spec.model_dump(mode="json"))
    dataset = Dataset(
        uid=job.uid.replace("ha-", "ds-", 1),
        team_id=access.team_id,
        job_id=job.id,
        repositories=names,
    )
    dataset.prefix = f"{team_prefix(access.team.slug)}datasets/{dataset.uid}/"
    session.add(dataset)
    session.flush()
    send_after_commit(session, sender, HARVEST_TASK, job.uid)
    return DatasetOut.of(dataset, job)


def list_datasets(
    session: Session, access: TeamAccess, cursor: str | None, limit: int
) -> tuple[list[DatasetOut], str | None]:
    """The team's datasets with their harvest state."""
    rows, nxt = paginate(session, team_select(Dataset, access), Dataset.id, cursor, limit)
    return [DatasetOut.of(d, _job(session, d)) for d in rows], nxt


def get_dataset(session: Session, access: TeamAccess, uid: str) -> Dataset:
    """One dataset of the team, or 404."""
    return owned(session, Dataset, access, "dataset", uid=uid)


def trainable_dataset(session: Session, access: TeamAccess, uid: str) -> Dataset:
    """A dataset of the team that training and evaluation can read: harvested, not empty."""
    dataset = get_dataset(session, access, uid)
    if _job(session, dataset).state != JobState.succeeded:
        raise InvalidInput(
            f"dataset {uid} is not ready: wait for its harvest to succeed", field="dataset_id"
        )
    if dataset.stats.get("files_kept") == 0:
        reason = empty_reason(uid, access.team.slug, dataset.stats)
        raise InvalidInput(reason, field="dataset_id")
    return dataset


def show(session: Session, dataset: Dataset) -> DatasetOut:
    """A dataset's response shape."""
    return DatasetOut.of(dataset, _job(session, dataset))


def _job(session: Session, dataset: Dataset) -> Job:
    return session.get_one(Job, dataset.job_id)


def cancel_harvest(
    session: Session, access: TeamAccess, uid: str, stale_after_s: float = JOB_STALE_AFTER_S
) -> DatasetOut:
    """Stop a queued or running harvest (the worker removes what it wrote)."""
    dataset = get_dataset(session, access, uid)
    jobs.request_cancel(session, access, _job(session, dataset), stale_after_s)
    return show(session, dataset)


def delete_dataset(session: Session, access: TeamAccess, uid: str, store: ObjectStore) -> None:
    """Delete a finished dataset and its shards."""
    dataset = get_dataset(session, access, uid)
    job = _job(session, dataset)
    jobs.ensure_not_running(job, f"dataset {uid}")
    store.delete_prefix(dataset.prefix)
    session.delete(dataset)
    session.delete(job)
    audit.record(
        session,
        access.principal,
        "dataset.delete",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/datasets/{uid}",
    )


def previous_dataset_uids(session: Session, dataset: Dataset) -> Sequence[str]:
    """The team's earlier datasets, to deduplicate a new one against."""
    from tailor.db.models import JobState

    return session.scalars(
        select(Dataset.uid)
        .join(Job, Job.id == Dataset.job_id)
        .where(
            Dataset.team_id == dataset.team_id,
            Dataset.id < dataset.id,
            Job.state == JobState.succeeded,
        )
        .order_by(Dataset.id)
    ).all()
