"""The team's code index (repository context), rebuilt after each harvest and each repository
removal from the team's succeeded datasets, over the repositories the team still has."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.db.models import Dataset, Job, JobState, Repository, Team
from tailor.stages.context.store import Built, context_prefix, publish_index
from tailor.storage import ObjectStore

log = logging.getLogger("tailor.context")


def build_team_context(
    sessions: sessionmaker[Session], store: ObjectStore, team_id: int
) -> Built | None:
    """Rebuild the team's index; None (and no index left) when it has no dataset or is gone."""
    with sessions() as session:
        team = session.get(Team, team_id)
        if team is None:
            return None  # the team's purge removes its prefix, index included
        slug = team.slug
        datasets = session.execute(
            select(Dataset.uid, Dataset.prefix)
            .join(Job, Job.id == Dataset.job_id)
            .where(Dataset.team_id == team_id, Job.state == JobState.succeeded)
            .order_by(Dataset.id.desc())
        ).all()
        repos = list(session.scalars(select(Repository.name).where(Repository.team_id == team_id)))
    if not datasets or not repos:
        store.delete_prefix(context_prefix(slug))
        return None
    built = publish_index(store, slug, [(uid, prefix) for uid, prefix in datasets], repos)
    log.info(
        "code index of %s: %d files, %d symbols, %d chunks, %d bytes in %.1fs",
        slug, built.files, built.symbols, built.chunks, built.bytes, built.build_s,
    )  # fmt: skip
    return built
