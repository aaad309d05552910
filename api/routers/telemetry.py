"""/v1/teams/{team}/telemetry: the team's completions served and kept, from its IDEs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SessionDep, TeamViewer
from api.responses import READ
from tailor.telemetry.schemas import TeamTelemetry
from tailor.telemetry.stats import team_telemetry

router = APIRouter(prefix="/v1/teams/{team}/telemetry", tags=["telemetry"])


@router.get("", response_model=TeamTelemetry, responses=READ)
def get_telemetry(
    access: TeamViewer,
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> TeamTelemetry:
    """Completions served, acceptance rate, latency p50/p95 and tokens over the last `days`:
    in total and by member, language, adapter version and day."""
    return team_telemetry(session, access, days)
