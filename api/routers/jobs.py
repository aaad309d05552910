"""/v1/teams/{team}/jobs: state, event log and metric series of pipeline jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import (
    DEFAULT_PAGE,
    Cursor,
    KubeDep,
    Limit,
    SessionDep,
    SettingsDep,
    TeamMember,
    TeamViewer,
)
from api.responses import READ, errors
from tailor.jobs import service
from tailor.jobs.schemas import JobEventOut, JobOut, MetricSeries
from tailor.jobs.workloads import cancel_job as cancel
from tailor.pagination import Page
from tailor.services.costs import service as costs

router = APIRouter(prefix="/v1/teams/{team}/jobs", tags=["jobs"])


@router.get("", response_model=Page[JobOut], responses=READ)
def list_jobs(
    access: TeamViewer,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_PAGE,
    kind: Annotated[str | None, Query(max_length=32)] = None,
) -> Page[JobOut]:
    """The team's jobs, optionally of one kind (harvest, finetune, evaluation)."""
    rows, nxt = service.list_jobs(session, access, cursor, limit, kind)
    return Page(items=[JobOut.of(j) for j in rows], next_cursor=nxt)


@router.get("/{job_id}", response_model=JobOut, responses=READ)
def get_job(job_id: str, access: TeamViewer, session: SessionDep, settings: SettingsDep) -> JobOut:
    """One job's state and progress, and what it used and cost (`cost`)."""
    job = service.get_job(session, access, job_id)
    cost = costs.job_cost(session, job, settings)
    return JobOut.of(job).model_copy(
        update={"cost": cost.model_dump(mode="json") if cost else None}
    )


@router.get("/{job_id}/events", response_model=list[JobEventOut], responses=READ)
def job_events(
    job_id: str,
    access: TeamViewer,
    session: SessionDep,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> list[JobEventOut]:
    """The job's event log and logs, after event id `after` (poll to tail)."""
    job = service.get_job(session, access, job_id)
    return [
        JobEventOut(id=e.id, level=e.level, message=e.message, created_at=e.created_at)
        for e in service.events(session, job, after)
    ]


@router.get("/{job_id}/metrics", response_model=MetricSeries, responses=READ)
def job_metrics(job_id: str, access: TeamViewer, session: SessionDep) -> MetricSeries:
    """The job's metric time series (loss, eval loss, learning rate, tokens/s...)."""
    return service.metric_series(session, service.get_job(session, access, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut, responses=errors(403, 404, 409, 503))
def cancel_job(
    job_id: str, access: TeamMember, session: SessionDep, settings: SettingsDep, kube: KubeDep
) -> JobOut:
    """Cancel a job; always possible, idempotent once it has finished.

    A job on the cluster stops once the operator has removed its pods; it shows
    `cancel_requested` until then.
    """
    job = service.get_job(session, access, job_id)
    return JobOut.of(cancel(session, settings, access, job, kube))
