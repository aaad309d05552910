"""What a team reads of its completion telemetry."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel


class Summary(BaseModel):
    """Completions served and kept, and how fast, over some slice of a team's.

    `acceptance_rate` is the share of the completions an editor reported on (any view, select
    or dismiss) that were selected; None when none was reported on.
    """

    completions: int
    reported: int
    accepted: int
    acceptance_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    prompt_tokens: int
    completion_tokens: int


class Slice(Summary):
    """A summary of one member's, language's, adapter version's or day's completions."""

    key: str


class VersionDay(Summary):
    """One adapter version's completions on one day (the acceptance-over-time plot)."""

    version: str
    day: date


class TeamTelemetry(BaseModel):
    """A team's completions since `since`: in total and by member, language, version and day."""

    since: date
    total: Summary
    by_member: list[Slice]
    by_language: list[Slice]
    by_version: list[Slice]
    by_day: list[Slice]
    by_version_day: list[VersionDay]
    # Bounds and counts of the latency histogram, in milliseconds (`len(bounds) + 1` bins).
    latency_bounds_ms: list[float]
    latency_counts: list[int]
