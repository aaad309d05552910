"""/v1/internal: what the platform's own components report (the operator's status sink, the
training pods' events). In-cluster only: a request a proxy forwarded (the Ingress) is 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from api.deps import InternalCaller, SenderDep, SessionDep, SettingsDep, StoreDep, TeamSync
from api.responses import errors
from tailor.db.models import Job
from tailor.errors import NotFound, Unauthorized
from tailor.jobs.pod_events import job_for_token, record_events
from tailor.jobs.schemas import EventBatch, EventsRecorded, JobOut
from tailor.jobs.workloads import PhaseReport, apply_phase
from tailor.security import forwarded
from tailor.services.endpoints.schemas import EndpointReport
from tailor.services.endpoints.sync import record_backend
from tailor.services.finetunes.run import finish_trained
from tailor.services.teams import service as teams
from tailor.services.teams.schemas import Slug, TeamOut, TeamSeed


def in_cluster_only(request: Request, settings: SettingsDep) -> None:
    """404 for a request that came through a proxy: the Ingress exposes no internal route.

    In-cluster callers (the operator, training pods) reach the API's Service directly; every
    ingress controller adds X-Forwarded-For (or Forwarded) to what it passes on, and a caller
    cannot strip what the controller adds.
    """
    if settings.internal_refuse_forwarded and forwarded(request.headers):
        raise NotFound(f"{request.url.path} not found")


router = APIRouter(
    prefix="/v1/internal", tags=["internal"], dependencies=[Depends(in_cluster_only)]
)

_job_bearer = HTTPBearer(auto_error=False, description="The job's token (its pods' Secret).")


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


def _pod_job(
    job_id: str,
    session: SessionDep,
    settings: SettingsDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_job_bearer)],
) -> Job:
    """The job whose own token this is; refused before the body is read, so a caller without
    it learns nothing of what the route takes."""
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthorized("send 'Authorization: Bearer <job token>'")
    key = settings.job_token_key.get_secret_value() if settings.job_token_key else None
    return job_for_token(session, key, job_id, creds.credentials)


@router.post(
    "/jobs/{job_id}/events", response_model=EventsRecorded, responses=errors(401, 404, 409, 422)
)
def report_events(
    body: EventBatch, session: SessionDep, job: Annotated[Job, Depends(_pod_job)]
) -> EventsRecorded:
    """A training pod's events (metrics, logs, progress), stored as a local run's are.

    Authenticated by the job's own token, which writes this job only; a batch is stored
    whole or not at all.
    """
    return EventsRecorded(recorded=record_events(session, job, body))


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
