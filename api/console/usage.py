"""The team's IDE usage: completions served and kept, latency, by member, language, version
and day, with the acceptance rate over time per adapter version and a latency histogram."""

from __future__ import annotations

from fastapi import Request, Response

from api.console.plots import Histogram, Plot, acceptance_plot, histogram
from api.console.web import Viewer, render, team_router
from api.deps import SessionDep
from tailor.telemetry.schemas import TeamTelemetry
from tailor.telemetry.stats import team_telemetry

router = team_router()
DAYS = 30


@router.get("/usage")
def usage(request: Request, access: Viewer, session: SessionDep) -> Response:
    """Completions served, acceptance and latency over the last 30 days."""
    stats = team_telemetry(session, access, DAYS)
    return render(
        request,
        "usage.html",
        access=access,
        stats=stats,
        days=DAYS,
        acceptance=_acceptance(stats),
        latency=_latency(stats),
    )


def _acceptance(stats: TeamTelemetry) -> Plot:
    points: dict[str, list[tuple[int, float]]] = {}
    for row in stats.by_version_day:
        if row.acceptance_rate is not None:
            day = (row.day - stats.since).days
            points.setdefault(row.version, []).append((day, row.acceptance_rate))
    return acceptance_plot(points, stats.since.isoformat())


def _latency(stats: TeamTelemetry) -> Histogram:
    bounds = [f"{b:g}" for b in stats.latency_bounds_ms]
    labels = [*(f"≤{b}" for b in bounds), f">{bounds[-1]}"]
    return histogram(labels, stats.latency_counts, "Latency", "milliseconds")
