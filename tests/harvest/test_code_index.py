"""The code index built from a real harvest: what the harvest redacted never comes back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.models import Membership, Role, Team, User
from tailor.queue import CONTEXT_TASK
from tailor.security import CredentialCipher
from tailor.services.datasets.context import build_team_context
from tailor.services.datasets.run import run_harvest_job
from tailor.services.repositories.service import delete_repository
from tailor.stages.context.assemble import ContextQuery, assemble
from tailor.stages.context.store import TeamIndexes, publish_index
from tailor.stages.harvest.shards import dataset_prefix
from tailor.storage import FileStore
from tailor.tenancy import Principal, TeamAccess
from tests.conftest import celery_broker
from tests.harvest.conftest import TOKEN, TeamRepos
from tests.harvest.planted import SECRETS
from tests.harvest.test_pipeline import TEAM, harvest
from tests.harvest.test_run_job import queue_harvest


def test_no_redacted_secret_appears_in_the_index_or_a_snippet(
    team_repos: TeamRepos, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "objects")
    harvest(team_repos, store, tmp_path / "cache", dataset_id="ds-1")
    publish_index(store, TEAM, [("ds-1", dataset_prefix(TEAM, "ds-1"))], ["billing", "payments"])
    index = TeamIndexes(store).get(TEAM)
    assert index is not None
    prefix = "from billing.settings import AWS_ACCESS_KEY_ID, GITHUB_TOKEN, STRIPE\n\nkey = "
    query = ContextQuery(prefix, "\n", "src/billing/client.py")

    found = assemble(index, query, 2000, lambda fs: [len(f.body) // 3 for f in fs])

    shown = [f.body for f in found.files]
    assert any("AWS_ACCESS_KEY_ID" in body for body in shown)  # the settings module is found
    everything = [index.chunk_text(c) for c in range(index.chunks)] + [s[4] for s in index.symbols]
    for value in SECRETS.values():
        assert not any(value in text for text in [*shown, *everything])


@pytest.fixture
def broker() -> Iterator[tuple[Celery, redis.Redis]]:
    """A sender to a private Redis database, and that database (to read what was queued)."""
    yield from celery_broker()


def test_a_succeeded_harvest_queues_the_rebuild_of_its_teams_index(
    sessions: sessionmaker[Session],
    settings: Settings,
    store: FileStore,
    cipher: CredentialCipher,
    team_repos: TeamRepos,
    broker: tuple[Celery, redis.Redis],
) -> None:
    sender, queue = broker
    _slug, job_uid, _ = queue_harvest(sessions, team_repos, cipher, TOKEN)

    run_harvest_job(sessions, store, settings, job_uid, sender=sender)

    messages = [json.loads(raw) for raw in queue.lrange("celery", 0, -1)]
    assert [m["headers"]["task"] for m in messages] == [CONTEXT_TASK]


def test_the_rebuild_indexes_the_harvest_and_drops_a_removed_repository(
    sessions: sessionmaker[Session],
    settings: Settings,
    store: FileStore,
    cipher: CredentialCipher,
    team_repos: TeamRepos,
) -> None:
    slug, job_uid, _ = queue_harvest(sessions, team_repos, cipher, TOKEN)
    run_harvest_job(sessions, store, settings, job_uid)
    with sessions() as session:
        tenant_team = session.scalars(select(Team).where(Team.slug == slug)).one()
    built = build_team_context(sessions, store, tenant_team.id)
    assert built is not None and built.files > 0
    assert "billing" in repos_indexed(store, slug)

    with sessions() as session:
        team = session.get_one(Team, tenant_team.id)
        owner = session.scalars(
            select(User)
            .join(Membership)
            .where(Membership.team_id == team.id, Membership.role == Role.owner)
        ).one()
        principal = Principal(user_id=owner.id, email=owner.email)
        access = TeamAccess(team=team, role=Role.owner, principal=principal)
        delete_repository(session, access, "billing")
        session.commit()
    build_team_context(sessions, store, tenant_team.id)

    assert repos_indexed(store, slug) == {"payments"}


def repos_indexed(store: FileStore, team: str) -> set[str]:
    index = TeamIndexes(store, refresh_s=0).get(team)
    assert index is not None
    return {repo for repo, _path, _lang in index.files}
