"""The platform admin's view: every team and its quota, the job queue, failures, the audit log.

Only platform admins reach it; anyone else is told it does not exist. The reads here span
all teams on purpose, which is why they are not team-scoped service calls.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.console.forms import FormErrors, optional_int, parse, service_errors
from api.console.web import (
    PREFIX,
    ConsoleRoute,
    Form,
    PlatformAdmin,
    form_text,
    render,
    saved,
)
from api.deps import SessionDep, TeamSync
from tailor.db.models import AuditEvent, Job, JobState, Role, Team
from tailor.errors import TailorError
from tailor.pagination import MAX_LIMIT
from tailor.services.teams import service as teams
from tailor.services.teams.schemas import TeamUpdate
from tailor.tenancy import Principal, team_for

router = APIRouter(prefix=PREFIX + "/admin", route_class=ConsoleRoute, include_in_schema=False)
ACTIVE = (JobState.queued, JobState.running)


def _active_jobs(session: Session) -> list[Job]:
    return list(
        session.scalars(select(Job).where(Job.state.in_(ACTIVE)).order_by(Job.id).limit(200))
    )


def _failures(session: Session) -> list[Job]:
    return list(
        session.scalars(
            select(Job).where(Job.state == JobState.failed).order_by(Job.id.desc()).limit(50)
        )
    )


def _audit(session: Session) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(100)))


def _gpus(job: Job) -> int:
    # A running fine-tune holds one GPU per process; harvests and CPU work hold none.
    if job.kind != "finetune" or job.state != JobState.running:
        return 0
    return int(job.spec.get("num_processes") or 1)


def _context(session: Session, principal: Principal) -> dict[str, Any]:
    rows, _ = teams.list_teams(session, principal, None, MAX_LIMIT)
    slugs = {t.id: t.slug for t in session.scalars(select(Team))}
    active = _active_jobs(session)
    usage: dict[int, dict[str, int]] = defaultdict(lambda: {"running": 0, "queued": 0, "gpus": 0})
    for job in active:
        usage[job.team_id][job.state.value] += 1
        usage[job.team_id]["gpus"] += _gpus(job)
    return {
        "teams": rows,
        "usage": usage,
        "slugs": slugs,
        "active": active,
        "failures": _failures(session),
        "audit": _audit(session),
    }


@router.get("")
def overview(request: Request, principal: PlatformAdmin, session: SessionDep) -> Response:
    """All teams with quota and usage, running and queued jobs, failures, the audit log."""
    return render(request, "admin.html", errors={}, **_context(session, principal))


@router.post("/teams/{team}/quota")
def set_quota(
    team: str,
    request: Request,
    form: Form,
    principal: PlatformAdmin,
    session: SessionDep,
    sync: TeamSync,
) -> Response:
    """Set a team's GPU quota."""
    access = team_for(session, principal, team, Role.admin)
    try:
        body = parse(TeamUpdate, {"gpu_quota": optional_int(form_text(form, "gpu_quota"))})
        teams.update_team(session, access, body, sync)
    except (FormErrors, TailorError) as exc:
        session.rollback()
        errors = exc.errors if isinstance(exc, FormErrors) else service_errors(exc)
        message = next(iter(errors.values()))
        return render(
            request, "admin.html", 422, errors={team: message}, **_context(session, principal)
        )
    return saved(session, PREFIX + "/admin", "quota-set")
