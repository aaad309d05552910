"""Completion telemetry is kept `telemetry_retention_days`, then deleted (events with it)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from tailor.db.base import utcnow
from tailor.db.models import CompletionEvent, ServedCompletion


def purge_expired(session: Session, retention_days: int) -> int:
    """Delete the completions (and their events) older than the retention; how many went."""
    old = ServedCompletion.created_at < utcnow() - timedelta(days=retention_days)
    # Events first: SQLite cascades only with its foreign-key pragma on.
    expired = select(ServedCompletion.id).where(old)
    session.execute(delete(CompletionEvent).where(CompletionEvent.completion_id.in_(expired)))
    result = session.execute(delete(ServedCompletion).where(old))
    assert isinstance(result, CursorResult)
    return result.rowcount
