"""/v1/teams/{team}/evaluations: score an adapter version against its base model."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import DEFAULT_PAGE, Cursor, Limit, SenderDep, SessionDep, TeamMember, TeamViewer
from api.responses import READ, WRITE
from tailor.jobs import service as jobs
from tailor.jobs.schemas import JobOut
from tailor.pagination import Page
from tailor.services.evaluations.service import EvaluationCreate, start_evaluation

router = APIRouter(prefix="/v1/teams/{team}/evaluations", tags=["evaluations"])


@router.post("", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED, responses=WRITE)
def create_evaluation(
    body: EvaluationCreate, access: TeamMember, session: SessionDep, sender: SenderDep
) -> JobOut:
    """Evaluate an adapter version: team FIM tasks, eval loss and HumanEval, base vs adapter."""
    return start_evaluation(session, access, body, sender)


@router.get("", response_model=Page[JobOut], responses=READ)
def list_evaluations(
    access: TeamViewer, session: SessionDep, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE
) -> Page[JobOut]:
    """The team's evaluations; each job's result is the side-by-side report."""
    rows, nxt = jobs.list_jobs(session, access, cursor, limit, kind="evaluation")
    return Page(items=[JobOut.of(j) for j in rows], next_cursor=nxt)
