"""The worker side of a harvest: from a job id to shards in the store and stats in the DB."""

from __future__ import annotations

import logging
import threading
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
from tailor.services.datasets.fanout import (
    Dispatch,
    HarvestContext,
    claim_part,
    run_claimed_part,
    run_fanout,
)
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


def run_harvest_job(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    settings: Settings,
    job_uid: str,
    stop: threading.Event | None = None,
    dispatch: Dispatch | None = None,
    *,
    sender: Celery | None = None,
) -> None:
    """Run (or, after a crash, re-run) the harvest of `job_uid` to a final state.

    `stop` is the attempt's stop event (`tailor.jobs.attempt`); without one the harvest asks
    the database whether it was cancelled. With `dispatch` (sends the task of part i), a
    harvest of `harvest_fanout_min_repos` repositories or more is fanned out over the
    workers (`tailor.services.datasets.fanout`). With a `sender`, a succeeded harvest queues
    the rebuild of the team's code index once it has committed.
    """

    def read(session: Session, job: Job) -> HarvestContext:
        return _read(session, job, settings)

    def work(h: HarvestContext, recorder: JobRecorder) -> HarvestResult:
        private_dir(h.cache_dir.parent)  # the caches of every team: only the worker may enter
        with removed_if_interrupted(store, h.output):
            if dispatch is not None and len(h.sources) >= settings.harvest_fanout_min_repos:
                return run_fanout(sessions, store, settings, h, recorder, dispatch)
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

    def finish(session: Session, job: Job, h: HarvestContext, result: HarvestResult) -> None:
        dataset = session.get_one(Dataset, h.dataset_id)
        _succeed(session, job, dataset, result.manifest)
        if sender is not None:
            send_after_commit(session, sender, CONTEXT_TASK, dataset.team_id)

    def discard(h: HarvestContext, _result: HarvestResult | None) -> None:
        store.delete_prefix(h.output)

    stage = Stage(
        read, work, finish, cancelled=(HarvestCancelled,), expected=(HarvestError,), discard=discard
    )
    run_job(sessions, job_uid, stage, stop)


def _read(session: Session, job: Job, settings: Settings) -> HarvestContext:
    dataset = session.scalars(select(Dataset).where(Dataset.job_id == job.id)).one()
    team = session.get_one(Team, dataset.team_id)
    return HarvestContext(
        job.id,
        HarvestSpec.model_validate(job.spec),
        _sources(session, dataset, CredentialCipher(settings.encryption_key())),
        list(previous_dataset_uids(session, dataset)),
        dataset.id,
        team.slug,
        dataset.uid,
        git_cache_dir(settings.workspace, team),
    )


def run_harvest_part(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    settings: Settings,
    job_uid: str,
    index: int,
) -> None:
    """Run part `index` of the fanned-out harvest `job_uid`, unless it is over or taken.

    A delivery for a finished or cancelled harvest, or for a part another live process holds
    or already finished, does nothing.
    """
    with sessions.begin() as session:
        job = session.scalars(select(Job).where(Job.uid == job_uid)).one_or_none()
        if job is None or job.state.final or job.cancel_requested:
            return
        ctx = _read(session, job, settings)
    if claim_part(sessions, ctx.job_id, settings.job_stale_after_s, index) is None:
        return
    private_dir(ctx.cache_dir.parent)
    recorder = JobRecorder(sessions, ctx.job_id)  # no watch here: it asks the database
    run_claimed_part(sessions, store, settings, ctx, index, recorder.cancelled)


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
