"""The worker's side: a queued harvest job runs to a final state, with stats and commits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.models import Dataset, Job, JobEvent, JobState, Repository, Role, Team
from tailor.errors import InvalidInput
from tailor.security import CredentialCipher
from tailor.services.datasets.run import run_harvest_job
from tailor.services.datasets.service import get_dataset, show, start_harvest
from tailor.services.finetunes.service import start_finetune
from tailor.services.repositories.schemas import RepositoryCreate
from tailor.services.repositories.service import create_repository
from tailor.stages.harvest.pipeline import HarvestResult, run_harvest
from tailor.stages.harvest.remote import UNREACHABLE
from tailor.stages.harvest.spec import HarvestSpec
from tailor.stages.train.spec import TrainSpec
from tailor.storage import FileStore
from tailor.tenancy import Principal, TeamAccess
from tests.conftest import Tenant, create_tenant, register_base
from tests.harvest.conftest import LOCAL, TOKEN, TeamRepos

SENDER = Celery("test-sender", broker="memory://")


def register(
    session: Session, access: TeamAccess, repos: TeamRepos, cipher: CredentialCipher, token: str
) -> None:
    for name in ("billing", "payments"):
        body = RepositoryCreate(
            name=name,
            url=repos.server.url(name),
            credential_kind="token",
            credential=token if name == "billing" else TOKEN,  # type: ignore[arg-type]
        )
        create_repository(session, access, body, cipher, LOCAL)


def owner_access(tenant: Tenant) -> TeamAccess:
    principal = Principal(user_id=tenant.owner.id, email=tenant.owner.email)
    return TeamAccess(team=tenant.team, role=Role.owner, principal=principal)


def queue_harvest(
    sessions: sessionmaker[Session], repos: TeamRepos, cipher: CredentialCipher, token: str
) -> tuple[str, str, str]:
    """(team slug, job uid, dataset uid) of a committed, queued harvest."""
    with sessions() as session:
        tenant = create_tenant(session)
        access = owner_access(tenant)
        register(session, access, repos, cipher, token)
        out = start_harvest(session, access, HarvestSpec(), SENDER)
        session.commit()
        return tenant.slug, out.job_id, out.id


def test_a_queued_harvest_ends_succeeded_with_stats(
    sessions: sessionmaker[Session],
    settings: Settings,
    store: FileStore,
    cipher: CredentialCipher,
    team_repos: TeamRepos,
) -> None:
    slug, job_uid, dataset_uid = queue_harvest(sessions, team_repos, cipher, TOKEN)
    run_harvest_job(sessions, store, settings, job_uid)
    with sessions() as session:
        job = session.scalars(select(Job).where(Job.uid == job_uid)).one()
        dataset = session.scalars(select(Dataset).where(Dataset.uid == dataset_uid)).one()
        repos = session.scalars(select(Repository).where(Repository.team_id == job.team_id)).all()
        assert (job.state, job.progress) == (JobState.succeeded, 1.0)
        assert dataset.stats["files_kept"] == 6
        assert {r.name: r.last_harvested_commit for r in repos} == team_repos.heads
    manifest = json.loads(store.get_bytes(f"teams/{slug}/datasets/{dataset_uid}/manifest.json"))
    assert manifest["stats"] == dataset.stats


def test_a_repository_with_a_wrong_token_is_logged_and_not_remembered(
    sessions: sessionmaker[Session],
    settings: Settings,
    store: FileStore,
    cipher: CredentialCipher,
    team_repos: TeamRepos,
) -> None:
    bad = "revoked-token-0a1b2c3d"
    _slug, job_uid, _ds = queue_harvest(sessions, team_repos, cipher, bad)
    run_harvest_job(sessions, store, settings, job_uid)
    with sessions() as session:
        job = session.scalars(select(Job).where(Job.uid == job_uid)).one()
        events = session.scalars(select(JobEvent.message).where(JobEvent.job_id == job.id)).all()
        billing = session.scalars(
            select(Repository).where(
                Repository.team_id == job.team_id, Repository.name == "billing"
            )
        ).one()
        assert job.state == JobState.succeeded
        assert any(f"repository billing failed: {UNREACHABLE}" in e for e in events)
        assert not any(bad in e for e in events)
        assert billing.last_harvested_commit is None


def test_a_harvest_whose_repositories_all_fail_is_failed_with_the_reasons(
    sessions: sessionmaker[Session],
    settings: Settings,
    store: FileStore,
    cipher: CredentialCipher,
    team_repos: TeamRepos,
) -> None:
    _slug, job_uid, _ds = queue_harvest(sessions, team_repos, cipher, TOKEN)
    team_repos.server.stop()  # the git host goes away before the worker starts
    run_harvest_job(sessions, store, settings, job_uid)
    with sessions() as session:
        job = session.scalars(select(Job).where(Job.uid == job_uid)).one()
        assert job.state == JobState.failed
        assert job.error is not None and f"billing: {UNREACHABLE}" in job.error
    assert store.list("teams/") == []


def test_a_cancelled_harvest_ends_cancelled_and_empty(
    sessions: sessionmaker[Session],
    settings: Settings,
    store: FileStore,
    cipher: CredentialCipher,
    team_repos: TeamRepos,
) -> None:
    _slug, job_uid, _ds = queue_harvest(sessions, team_repos, cipher, TOKEN)
    with sessions.begin() as session:
        job = session.scalars(select(Job).where(Job.uid == job_uid)).one()
        job.state, job.cancel_requested = JobState.running, True
    run_harvest_job(sessions, store, settings, job_uid)
    with sessions() as session:
        job = session.scalars(select(Job).where(Job.uid == job_uid)).one()
        assert job.state == JobState.cancelled
    assert store.list("teams/") == []


def test_a_cancel_asked_as_the_harvest_ends_discards_it(
    sessions: sessionmaker[Session],
    settings: Settings,
    store: FileStore,
    cipher: CredentialCipher,
    team_repos: TeamRepos,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its commits are not remembered either: the next harvest must not skip them."""
    _slug, job_uid, _ds = queue_harvest(sessions, team_repos, cipher, TOKEN)

    def harvest_then_cancel(*args: Any, **kwargs: Any) -> HarvestResult:
        result = run_harvest(*args, **kwargs)
        with sessions.begin() as session:  # after the harvest's last look at the job
            session.execute(update(Job).where(Job.uid == job_uid).values(cancel_requested=True))
        return result

    monkeypatch.setattr("tailor.services.datasets.run.run_harvest", harvest_then_cancel)
    run_harvest_job(sessions, store, settings, job_uid)
    with sessions() as session:
        job = session.scalars(select(Job).where(Job.uid == job_uid)).one()
        repos = session.scalars(select(Repository).where(Repository.team_id == job.team_id))
        assert job.state == JobState.cancelled
        assert {r.last_harvested_commit for r in repos} == {None}
    assert store.list("teams/") == []


def test_a_harvest_of_unchanged_repositories_says_so_and_cannot_be_trained_on(
    sessions: sessionmaker[Session],
    settings: Settings,
    store: FileStore,
    cipher: CredentialCipher,
    team_repos: TeamRepos,
) -> None:
    with sessions() as session:
        tenant = create_tenant(session)
        register(session, owner_access(tenant), team_repos, cipher, TOKEN)
        first = start_harvest(session, owner_access(tenant), HarvestSpec(), SENDER)
        session.commit()
        team_id, principal = tenant.team.id, owner_access(tenant).principal
    run_harvest_job(sessions, store, settings, first.job_id)
    with sessions() as session:
        access = TeamAccess(session.get_one(Team, team_id), Role.owner, principal)
        again = start_harvest(session, access, HarvestSpec(), SENDER)
        session.commit()
    run_harvest_job(sessions, store, settings, again.job_id)
    with sessions() as session:
        access = TeamAccess(session.get_one(Team, team_id), Role.owner, principal)
        job = session.scalars(select(Job).where(Job.uid == again.job_id)).one()
        shown = show(session, get_dataset(session, access, again.id))
        assert (job.state, job.result["unchanged_since"]) == (JobState.succeeded, [first.id])
        assert (shown.unchanged_since, shown.stats["files_kept"]) == ([first.id], 0)
        register_base(session, "tiny")
        spec = TrainSpec(
            base_model="tiny", team=access.team.slug, dataset_id=again.id, adapter_name="style"
        )
        with pytest.raises(InvalidInput) as refused:
            start_finetune(session, access, spec, SENDER, settings)
    assert refused.value.detail == (
        f"dataset '{again.id}' of team '{access.team.slug}' has no files: the repositories "
        f"have not changed since dataset {first.id}; train on {first.id} instead"
    )
