"""Upload slots: a user's uploads in flight are capped across connections and processes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker

from tailor.services.adapters.uploads import (
    TooManyUploads,
    UploadLimits,
    acquire_slot,
    release_slot,
)
from tailor.stages.package.archive import ArchiveLimits
from tests.conftest import create_user

MIB = 1024 * 1024


def test_slots_hold_across_connections_racing_for_them(
    committed: sessionmaker[Session],
) -> None:
    with committed.begin() as session:
        user_id = create_user(session).id
    limits = UploadLimits(MIB, MIB, ArchiveLimits(), per_user=2)

    def take() -> int | None:
        try:
            return acquire_slot(committed, user_id, limits)
        except TooManyUploads:
            return None

    with ThreadPoolExecutor(max_workers=6) as pool:
        taken = [slot for slot in pool.map(lambda _: take(), range(6)) if slot is not None]
    assert len(taken) == 2
    for slot in taken:
        release_slot(committed, slot)


def test_a_slot_left_by_a_dead_process_frees_itself(committed: sessionmaker[Session]) -> None:
    with committed.begin() as session:
        user_id = create_user(session).id
    stale = UploadLimits(MIB, MIB, ArchiveLimits(), per_user=1, slot_s=-1)
    acquire_slot(committed, user_id, stale)  # never released: its process died
    live = UploadLimits(MIB, MIB, ArchiveLimits(), per_user=1)
    release_slot(committed, acquire_slot(committed, user_id, live))
