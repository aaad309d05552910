"""What a finished harvest's statistics say about its dataset, in words for the team.

Read by the API (a fine-tune refused before it is queued) and by training (a dataset read
directly): one home for the sentence, so both say the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def unchanged_since(stats: Mapping[str, Any]) -> list[str]:
    """The earlier datasets since which nothing changed, when the harvest found no change."""
    return [str(d) for d in stats.get("unchanged_since") or []]


def empty_reason(dataset_id: str, team: str, stats: Mapping[str, Any]) -> str:
    """Why dataset `dataset_id` holds no file, and what to do instead."""
    since = ", ".join(unchanged_since(stats))
    if since:
        return (
            f"dataset {dataset_id!r} of team {team!r} has no files: the repositories have "
            f"not changed since dataset {since}; train on {since} instead"
        )
    return (
        f"dataset {dataset_id!r} of team {team!r} is empty (0 rows): the harvest kept no "
        "files; check the repositories and the harvest filters"
    )
