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
from api.responses import READ, WRITE
from tailor.jobs import service as jobs
from tailor.jobs.schemas import JobOut
from tailor.pagination import Page
from tailor.services.finetunes.service import start_finetune
from tailor.stages.train.spec import TrainSpec

router = APIRouter(prefix="/v1/teams/{team}/finetunes", tags=["finetunes"])


@router.post("", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED, responses=WRITE)
def create_finetune(
    body: TrainSpec,
    access: TeamMember,
    session: SessionDep,
    sender: SenderDep,
    settings: SettingsDep,
) -> JobOut:
    """Start fine-tuning; follow it under /jobs/{id} (state, events, metrics)."""
    return start_finetune(session, access, body, sender, settings)


@router.get("", response_model=Page[JobOut], responses=READ)
def list_finetunes(
    access: TeamViewer, session: SessionDep, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE
) -> Page[JobOut]:
    """The team's fine-tunes."""
    rows, nxt = jobs.list_jobs(session, access, cursor, limit, kind="finetune")
    return Page(items=[JobOut.of(j) for j in rows], next_cursor=nxt)
