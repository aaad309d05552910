"""What a team leaves outside the database, and removing it when the team goes.

The object store keeps the layout `teams/<slug>/…`, so a deleted team's prefix is emptied
before its slug can be taken again. Local caches are keyed by the team's identity (slug, id
and creation time) instead, so a new team with an old slug never finds the old team's cache,
even on a worker this process cannot reach.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

from tailor.db.models import Team
from tailor.storage import ObjectStore, team_prefix

log = logging.getLogger("tailor.teams")


def git_cache_dir(workspace: Path, team: Team) -> Path:
    """The directory of the team's git cache on this machine."""
    created = int(team.created_at.timestamp() * 1_000_000)
    return workspace / "git-cache" / f"{team.slug}.{team.id}.{created}"


def _local_dirs(workspace: Path, team: Team, job_uids: Iterable[str]) -> list[Path]:
    return [
        git_cache_dir(workspace, team),
        workspace / "git-cache" / team.slug,  # where versions before migration 0007 kept it
        *(workspace / "jobs" / uid for uid in job_uids),  # fine-tunes' specs and logs
    ]


def purge_team(store: ObjectStore, workspace: Path, team: Team, job_uids: Iterable[str]) -> int:
    """Remove the team's objects and local files; the number of objects removed."""
    removed = store.delete_prefix(team_prefix(team.slug))
    for directory in _local_dirs(workspace, team, job_uids):
        if directory.is_dir() and not directory.is_symlink():
            shutil.rmtree(directory)
    log.info("team %s purged: %d objects", team.slug, removed)
    return removed


def purge_leftovers(store: ObjectStore, workspace: Path, slug: str) -> int:
    """Remove anything under a slug a new team takes (a purge that failed half-way, a late
    write); the number of objects removed."""
    removed = store.delete_prefix(team_prefix(slug))
    legacy = workspace / "git-cache" / slug
    if legacy.is_dir() and not legacy.is_symlink():
        shutil.rmtree(legacy)
    if removed:
        log.warning("removed %d objects left under teams/%s/ by a deleted team", removed, slug)
    return removed
