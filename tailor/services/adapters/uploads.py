"""Bounds on adapter uploads: bytes as sent, what archives unpack to, uploads per user.

An upload is counted as it arrives (`UploadBudget`), so the API stops reading, and writes
nothing more, the moment a file or the whole upload passes its cap; what an archive
unpacks to is bounded in `tailor.stages.package.archive`. Each upload also holds one of its
user's few slots (`upload_slot`): a row whose (user, slot) is unique, so the cap holds
across every API process sharing the database, and a slot left by a process that died
frees itself after `adapter_upload_slot_s`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.base import utcnow
from tailor.db.models import UploadSlot
from tailor.errors import RateLimited
from tailor.stages.package.archive import ArchiveLimits
from tailor.stages.package.errors import UploadTooLargeError

MIB = 1024 * 1024
FORM_OVERHEAD = 64 * 1024  # boundaries, part headers and text fields around the files
RETRY_AFTER_S = 10  # an adapter upload takes seconds to minutes


class TooManyUploads(RateLimited):
    """The user has as many uploads in flight as the platform allows."""

    type_slug = "too-many-uploads"
    title = "Too many uploads in flight"


@dataclass(frozen=True)
class UploadLimits:
    """The platform's limits on one adapter upload and on a user's uploads at once."""

    max_file_bytes: int
    max_total_bytes: int
    archive: ArchiveLimits
    per_user: int = 2
    slot_s: int = 3600

    @classmethod
    def of(cls, settings: Settings) -> UploadLimits:
        """The limits the settings give."""
        return cls(
            max_file_bytes=settings.adapter_upload_max_file_mb * MIB,
            max_total_bytes=settings.adapter_upload_max_total_mb * MIB,
            archive=ArchiveLimits(
                max_unpacked_bytes=settings.adapter_upload_max_unpacked_mb * MIB,
                max_ratio=settings.adapter_upload_max_ratio,
                max_members=settings.adapter_upload_max_members,
            ),
            per_user=settings.adapter_uploads_per_user,
            slot_s=settings.adapter_upload_slot_s,
        )


class UploadBudget:
    """Counts an upload's bytes as they arrive; refuses the chunk that would pass a cap."""

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self.total = 0
        self.file = 0
        self.name = ""

    def start_file(self, name: str) -> None:
        """A new file of the upload begins."""
        self.name, self.file = name, 0

    def check_declared(self, length: int) -> None:
        """Refuse a body whose declared length is already over the upload's cap."""
        if length > self.limits.max_total_bytes + FORM_OVERHEAD:
            raise UploadTooLargeError(
                f"the upload is {length} bytes, over {self.limits.max_total_bytes // MIB} MiB, "
                "the platform's limit for one adapter upload"
            )

    def take(self, size: int) -> None:
        """Account for `size` more bytes before they are written; raise past a cap."""
        if self.file + size > self.limits.max_file_bytes:
            raise UploadTooLargeError(
                f"{self.name} is over {self.limits.max_file_bytes // MIB} MiB, the platform's "
                "limit for one uploaded file"
            )
        if self.total + size > self.limits.max_total_bytes:
            raise UploadTooLargeError(
                f"the upload is over {self.limits.max_total_bytes // MIB} MiB, the platform's "
                "limit for one adapter upload"
            )
        self.file += size
        self.total += size


def acquire_slot(sessions: sessionmaker[Session], user_id: int, limits: UploadLimits) -> int:
    """Take one of the user's upload slots (committed at once, for every API process to see).

    TooManyUploads (429, Retry-After) when all of them are held.
    """
    now = utcnow()
    with sessions.begin() as session:
        session.execute(
            delete(UploadSlot).where(UploadSlot.user_id == user_id, UploadSlot.expires_at < now)
        )
    for slot in range(limits.per_user):
        try:
            with sessions.begin() as session:
                row = UploadSlot(
                    user_id=user_id, slot=slot, expires_at=now + timedelta(seconds=limits.slot_s)
                )
                session.add(row)
                session.flush()
                return row.id
        except IntegrityError:
            continue  # held by another upload of this user, here or in another process
    raise TooManyUploads(
        f"you have {limits.per_user} adapter upload(s) in flight, the most the platform allows "
        "at once; retry when one has finished",
        retry_after=RETRY_AFTER_S,
    )


def release_slot(sessions: sessionmaker[Session], slot_id: int) -> None:
    """Give a slot back."""
    with sessions.begin() as session:
        session.execute(delete(UploadSlot).where(UploadSlot.id == slot_id))


@contextmanager
def upload_slot(
    sessions: sessionmaker[Session], user_id: int, limits: UploadLimits
) -> Iterator[int]:
    """Hold one of the user's upload slots for the duration of the block."""
    slot = acquire_slot(sessions, user_id, limits)
    try:
        yield slot
    finally:
        release_slot(sessions, slot)
