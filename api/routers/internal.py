"""/v1/internal: what the platform's own components report (the operator's status sink)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from api.deps import InternalCaller, SenderDep, SessionDep, SettingsDep, StoreDep, TeamSync
from api.responses import errors
from tailor.db.models import Job
from tailor.errors import NotFound
from tailor.jobs.schemas import JobOut
from tailor.jobs.workloads import PhaseReport, apply_phase
from tailor.services.endpoints.schemas import EndpointReport
from tailor.services.endpoints.sync import record_backend
from tailor.services.finetunes.run import finish_trained
from tailor.services.teams import service as teams
from tailor.services.teams.schemas import Slug, TeamOut, TeamSeed

router = APIRouter(prefix="/v1/internal", tags=["internal"])


@router.post("/jobs/{job_id}/status", response_model=JobOut, responses=errors(403, 404))
def report_status(
    job_id: str,
    body: PhaseReport,
    _caller: InternalCaller,
    session: SessionDep,
    store: StoreDep,
    sender: SenderDep,
) -> JobOut:
    """The operator reports a workload's phase (its token, or a platform admin's)."""
    job = session.scalar(select(Job).where(Job.uid == job_id))
    if job is None:
        raise NotFound(f"job {job_id} not found")
    finish = finish_trained(store, sender) if job.kind == "finetune" else None
    return JobOut.of(apply_phase(session, job, body, finish))


@router.post(
    "/endpoints/{namespace}/{name}/status", responses=errors(403, 404, 422), status_code=204
)
def report_endpoint(
    namespace: str,
    name: str,
    body: EndpointReport,
    _caller: InternalCaller,
    session: SessionDep,
    settings: SettingsDep,
) -> None:
    """The operator reports an InferenceEndpoint's status: its URL is where the gateway
    forwards the team's calls (a report without one changes nothing)."""
    if body.url:
        record_backend(session, settings, namespace, name, body.url)


@router.put("/teams/{slug}", response_model=TeamOut, responses=errors(403))
def seed_team(
    slug: Slug,
    body: TeamSeed,
    caller: InternalCaller,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    sync: TeamSync,
) -> TeamOut:
    """Create or update a team the chart declares (`tailor admin seed-teams`); idempotent."""
    team, _ = teams.seed_team(session, caller, slug, body, store, settings.workspace, sync)
    return TeamOut.model_validate(team)
