"""Completion telemetry past its retention is deleted with its events; newer stays."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tailor.db.base import utcnow
from tailor.db.models import CompletionEvent, ServedCompletion
from tailor.telemetry.retention import purge_expired
from tests.conftest import create_tenant

from .factories import record


def test_completions_past_the_retention_go_with_their_events(session: Session) -> None:
    tenant = create_tenant(session)
    old = record(
        session, tenant.team, tenant.owner, kinds=("select",), at=utcnow() - timedelta(days=40)
    )
    new = record(session, tenant.team, tenant.owner, kinds=("dismiss",))
    assert purge_expired(session, retention_days=30) == 1
    assert list(session.scalars(select(ServedCompletion.id))) == [new]
    events = session.scalars(select(CompletionEvent.completion_id))
    assert list(events) == [new] and old != new


def test_nothing_within_the_retention_is_deleted(session: Session) -> None:
    tenant = create_tenant(session)
    record(session, tenant.team, tenant.owner, at=utcnow() - timedelta(days=29))
    assert purge_expired(session, retention_days=30) == 0
    assert session.scalar(select(func.count()).select_from(ServedCompletion)) == 1
