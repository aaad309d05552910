"""A team's completion statistics: served, accepted, latency and tokens, sliced."""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from tailor.db.base import utcnow
from tailor.db.models import Adapter, AdapterVersion, CompletionEvent, ServedCompletion, User
from tailor.telemetry.schemas import Slice, Summary, TeamTelemetry, VersionDay
from tailor.tenancy import TeamAccess

BASE_VERSION = "base"  # the slice of completions of the base model (or of a deleted version)
UNKNOWN = "unknown"  # a language the client did not say, a member since deleted
LATENCY_BOUNDS_MS = [25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0]


@dataclass(frozen=True)
class _Row:
    member: str
    language: str
    version: str
    day: date
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    reported: bool
    accepted: bool


def team_telemetry(session: Session, access: TeamAccess, days: int = 30) -> TeamTelemetry:
    """The team's completions of the last `days` days (the team's only)."""
    since = utcnow() - timedelta(days=days)
    rows = _rows(session, access.team_id, since)
    by_version_day = _grouped(rows, lambda r: (r.version, r.day))
    return TeamTelemetry(
        since=since.date(),
        total=_summary(rows),
        by_member=_slices(rows, lambda r: r.member),
        by_language=_slices(rows, lambda r: r.language),
        by_version=_slices(rows, lambda r: r.version),
        by_day=_slices(rows, lambda r: r.day.isoformat()),
        by_version_day=[
            VersionDay(version=v, day=d, **_summary(group).model_dump())
            for (v, d), group in sorted(by_version_day.items())
        ],
        latency_bounds_ms=LATENCY_BOUNDS_MS,
        latency_counts=_histogram(r.latency_ms for r in rows),
    )


def _rows(session: Session, team_id: int, since: datetime) -> list[_Row]:
    events = (
        select(
            CompletionEvent.completion_id,
            func.max(case((CompletionEvent.kind == "select", 1), else_=0)).label("accepted"),
        )
        .group_by(CompletionEvent.completion_id)
        .subquery()
    )
    c = ServedCompletion
    stmt = (
        select(
            User.email,
            c.language,
            Adapter.name,
            AdapterVersion.version,
            c.created_at,
            c.latency_ms,
            c.prompt_tokens,
            c.completion_tokens,
            events.c.completion_id,
            events.c.accepted,
        )
        .outerjoin(User, User.id == c.user_id)
        .outerjoin(AdapterVersion, AdapterVersion.id == c.version_id)
        .outerjoin(Adapter, Adapter.id == AdapterVersion.adapter_id)
        .outerjoin(events, events.c.completion_id == c.id)
        .where(c.team_id == team_id, c.created_at >= since)
    )
    return [_row(*found) for found in session.execute(stmt)]


def _row(
    email: str | None,
    language: str | None,
    adapter: str | None,
    version: int | None,
    created: datetime,
    latency: float,
    prompt: int,
    completion: int,
    reported: str | None,
    accepted: int | None,
) -> _Row:
    return _Row(
        member=email or UNKNOWN,
        language=language or UNKNOWN,
        version=f"{adapter}:v{version}" if adapter else BASE_VERSION,
        day=created.date(),
        latency_ms=latency,
        prompt_tokens=prompt,
        completion_tokens=completion,
        reported=reported is not None,
        accepted=bool(accepted),
    )


K = TypeVar("K", bound=Hashable)


def _grouped(rows: Iterable[_Row], key: Callable[[_Row], K]) -> dict[K, list[_Row]]:
    groups: dict[K, list[_Row]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def _slices(rows: Sequence[_Row], key: Callable[[_Row], str]) -> list[Slice]:
    groups = _grouped(rows, key)
    return [Slice(key=k, **_summary(groups[k]).model_dump()) for k in sorted(groups)]


def _summary(rows: Sequence[_Row]) -> Summary:
    latencies = sorted(r.latency_ms for r in rows)
    reported = sum(r.reported for r in rows)
    accepted = sum(r.accepted for r in rows)
    return Summary(
        completions=len(rows),
        reported=reported,
        accepted=accepted,
        acceptance_rate=accepted / reported if reported else None,
        latency_p50_ms=_percentile(latencies, 0.50),
        latency_p95_ms=_percentile(latencies, 0.95),
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
    )


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _histogram(latencies: Iterable[float]) -> list[int]:
    counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    for latency in latencies:
        counts[bisect.bisect_left(LATENCY_BOUNDS_MS, latency)] += 1
    return counts
