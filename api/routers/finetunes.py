"""/v1/teams/{team}/finetunes: train a new adapter version on one of the team's datasets."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import (
    DEFAULT_PAGE,
    Cursor,
    Limit,
    SenderDep,
    SessionDep,
    SettingsDep,
    TeamMember,
    TeamViewer,
)
from api.responses import READ, errors
from tailor.jobs import service as jobs
from tailor.jobs.schemas import JobOut
from tailor.pagination import Page
from tailor.services.costs import service as costs
from tailor.services.costs.schemas import EstimateOut
from tailor.services.finetunes.service import start_finetune
from tailor.stages.train.spec import TrainSpec

router = APIRouter(prefix="/v1/teams/{team}/finetunes", tags=["finetunes"])


@router.post(
    "",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(402, 403, 404, 409),
)
def create_finetune(
    body: TrainSpec,
    access: TeamMember,
    session: SessionDep,
    sender: SenderDep,
    settings: SettingsDep,
) -> JobOut:
    """Start fine-tuning; follow it under /jobs/{id} (state, events, metrics).

    The job carries its estimate; past the team budget's hard limit it answers 402 and starts
    nothing, past the soft limit the job's `warnings` say so.
    """
    return start_finetune(session, access, body, sender, settings)


@router.post("/estimate", response_model=EstimateOut, responses=READ)
def estimate_finetune(
    body: TrainSpec, access: TeamMember, session: SessionDep, settings: SettingsDep
) -> EstimateOut:
    """What the fine-tune would cost (GPU-hours, price) and whether the budget allows it;
    starts nothing."""
    return costs.estimate_finetune(session, access, body, settings)


@router.get("", response_model=Page[JobOut], responses=READ)
def list_finetunes(
    access: TeamViewer, session: SessionDep, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE
) -> Page[JobOut]:
    """The team's fine-tunes."""
    rows, nxt = jobs.list_jobs(session, access, cursor, limit, kind="finetune")
    return Page(items=[JobOut.of(j) for j in rows], next_cursor=nxt)
