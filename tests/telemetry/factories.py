"""Served completions and their events written as the gateway's recorder writes them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import count

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from tailor.db.base import utcnow
from tailor.db.models import Team, User
from tailor.telemetry.recorder import Recorder
from tailor.telemetry.records import Feedback, Served

_ids = count()


def record(
    session: Session,
    team: Team,
    user: User,
    *,
    kinds: tuple[str, ...] = (),
    language: str | None = "python",
    latency_ms: float = 40.0,
    at: datetime | None = None,
    version_id: int | None = None,
) -> str:
    """One served completion of `team` by `user`, with `kinds` of events, through a recorder
    on the session's connection; its id."""

    @contextmanager
    def savepoint() -> Iterator[Connection]:
        with session.begin_nested():
            yield session.connection()

    recorder = Recorder(savepoint, savepoint, interval_s=3600)
    cid = f"cmpl-test{next(_ids)}"
    served = Served(
        id=cid,
        team_id=team.id,
        user_id=user.id,
        version_id=version_id,
        model="completion",
        route="completions",
        language=language,
        latency_ms=latency_ms,
        prompt_tokens=10,
        completion_tokens=4,
        created_at=at or utcnow(),
    )
    recorder.served(served)
    for kind in kinds:
        assert recorder.feedback(team.id, Feedback(cid, kind))
    recorder.flush()
    return cid
