"""The worker side of a harvest: from a job id to shards in the store and stats in the DB."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.models import Dataset, Job, Repository, Team
from tailor.jobs import service as jobs
from tailor.jobs.attempt import removed_if_interrupted
from tailor.jobs.recorder import JobRecorder
from tailor.jobs.runner import Stage, run_job
from tailor.queue import CONTEXT_TASK, send_after_commit
from tailor.security import CredentialCipher
from tailor.services.datasets.service import previous_dataset_uids
from tailor.services.repositories.service import read_credential
from tailor.services.teams.purge import git_cache_dir
from tailor.stages.harvest.fetch import private_dir
from tailor.stages.harvest.outcome import unchanged_since
from tailor.stages.harvest.pipeline import (
    HarvestCancelled,
    HarvestError,
    HarvestResult,
    run_harvest,
)
from tailor.stages.harvest.spec import HarvestSpec, RepoSource
from tailor.stages.harvest.urls import UrlPolicy
from tailor.storage import ObjectStore

log = logging.getLogger("tailor.harvest")


def _sources(session: Session, dataset: Dataset, cipher: CredentialCipher) -> list[RepoSource]:
    repos = session.scalars(
        select(Repository).where(
            Repository.team_id == dataset.team_id, Repository.name.in_(dataset.repositories)
        )
    ).all()
    return [
        RepoSource(
            name=r.name,
            url=r.url,
            branch=r.branch,
            include=r.include,
            exclude=r.exclude,
            credential=read_credential(r, cipher),
            credential_kind=None if r.credential_kind == "none" else r.credential_kind,  # type: ignore[arg-type]
            last_commit=r.last_harvested_commit,
        )
        for r in repos
    ]


@dataclass(frozen=True)
class _Harvest:
    """A harvest job as read at its start."""

    spec: HarvestSpec
    sources: list[RepoSource]
    previous: list[str]
    dataset_id: int
    team: str
    dataset_uid: str
    cache_dir: Path

    @property
    def output(self) -> str:
        return f"teams/{self.team}/datasets/{self.dataset_uid}/"


def run_harvest_job(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    settings: Settings,
    job_uid: str,
    stop: threading.Event | None = None,
    *,
    sender: Celery | None = None,
) -> None:
    """Run (or, after a crash, re-run) the harvest of `job_uid` to a final state.

    `stop` is the attempt's stop event (`tailor.jobs.attempt`); without one the harvest asks
    the database whether it was cancelled. With a `sender`, a succeeded harvest queues the
    rebuild of the team's code index once it has committed.
    """

    def read(session: Session, job: Job) -> _Harvest:
        dataset = session.scalars(select(Dataset).where(Dataset.job_id == job.id)).one()
        team = session.get_one(Team, dataset.team_id)
        return _Harvest(
            HarvestSpec.model_validate(job.spec),
            _sources(session, dataset, CredentialCipher(settings.encryption_key())),
            list(previous_dataset_uids(session, dataset)),
            dataset.id,
            team.slug,
            dataset.uid,
            git_cache_dir(settings.workspace, team),
        )

    def work(h: _Harvest, recorder: JobRecorder) -> HarvestResult:
        private_dir(h.cache_dir.parent)  # the caches of every team: only the worker may enter
        with removed_if_interrupted(store, h.output):
            return run_harvest(
                h.spec,
                h.sources,
                store,
                team=h.team,
                dataset_id=h.dataset_uid,
                cache_dir=h.cache_dir,
                previous_datasets=h.previous,
                parallelism=settings.harvest_parallelism,
                timeout_s=settings.harvest_timeout_s,
                max_repo_bytes=settings.harvest_max_repo_mb << 20,
                progress=recorder.progress,
                cancelled=recorder.cancelled,
                policy=UrlPolicy.of(settings),
            )

    def finish(session: Session, job: Job, h: _Harvest, result: HarvestResult) -> None:
        dataset = session.get_one(Dataset, h.dataset_id)
        _succeed(session, job, dataset, result.manifest)
        if sender is not None:
            send_after_commit(session, sender, CONTEXT_TASK, dataset.team_id)

    def discard(h: _Harvest, _result: HarvestResult | None) -> None:
        store.delete_prefix(h.output)

    stage = Stage(
        read, work, finish, cancelled=(HarvestCancelled,), expected=(HarvestError,), discard=discard
    )
    run_job(sessions, job_uid, stage, stop)


def _succeed(session: Session, job: Job, dataset: Dataset, manifest: dict[str, Any]) -> None:
    dataset.stats = manifest.get("stats", {})
    outcomes = manifest.get("repositories", [])
    _remember_commits(session, dataset, outcomes)
    for repo in (r for r in outcomes if r.get("status") == "failed"):
        message = f"repository {repo['name']} failed: {repo.get('reason')}"
        jobs.log(session, job, message, level="warning")
    result = {"dataset_id": dataset.uid, "stats": dataset.stats, "repositories": outcomes}
    since = unchanged_since(dataset.stats)
    if since:
        result["unchanged_since"] = since
        jobs.log(session, job, f"no changes since dataset {', '.join(since)}: nothing new")
    jobs.succeed(session, job, result)


def _remember_commits(session: Session, dataset: Dataset, outcomes: list[dict[str, Any]]) -> None:
    commits = {o["name"]: o.get("commit") for o in outcomes if o.get("status") == "ok"}
    for repo in session.scalars(
        select(Repository).where(
            Repository.team_id == dataset.team_id, Repository.name.in_(list(commits))
        )
    ):
        repo.last_harvested_commit = commits[repo.name] or repo.last_harvested_commit
