"""/v1/teams: create, list, read, change and delete teams."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import (
    DEFAULT_PAGE,
    CurrentPrincipal,
    Cursor,
    Limit,
    SessionDep,
    SettingsDep,
    StoreDep,
    TeamAdmin,
    TeamOwner,
    TeamSync,
    TeamViewer,
)
from api.responses import READ, WRITE, errors
from tailor.pagination import Page
from tailor.services.endpoints.gate import team_policy
from tailor.services.teams import service
from tailor.services.teams.schemas import TeamCreate, TeamOut, TeamUpdate
from tailor.stages.evaluate.spec import GatePolicy

router = APIRouter(prefix="/v1/teams", tags=["teams"])


@router.post(
    "", response_model=TeamOut, status_code=status.HTTP_201_CREATED, responses=errors(403, 409)
)
def create_team(
    body: TeamCreate,
    session: SessionDep,
    principal: CurrentPrincipal,
    store: StoreDep,
    settings: SettingsDep,
    sync: TeamSync,
) -> TeamOut:
    """Create a team; the caller becomes its owner."""
    team = service.create_team(session, principal, body, store, settings.workspace, sync)
    return TeamOut.model_validate(team)


@router.get("", response_model=Page[TeamOut], responses=errors())
def list_teams(
    session: SessionDep,
    principal: CurrentPrincipal,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_PAGE,
) -> Page[TeamOut]:
    """Teams the caller belongs to (all teams for platform admins)."""
    rows, nxt = service.list_teams(session, principal, cursor, limit)
    return Page(items=[TeamOut.model_validate(t) for t in rows], next_cursor=nxt)


@router.get("/{team}", response_model=TeamOut, responses=READ)
def get_team(access: TeamViewer) -> TeamOut:
    """One team."""
    return TeamOut.model_validate(access.team)


@router.patch("/{team}", response_model=TeamOut, responses=WRITE)
def update_team(
    body: TeamUpdate, access: TeamAdmin, session: SessionDep, sync: TeamSync
) -> TeamOut:
    """Rename a team; platform admins also set its GPU and cluster quota."""
    return TeamOut.model_validate(service.update_team(session, access, body, sync))


Confirm = Annotated[
    str | None,
    Query(
        max_length=40,
        description="The team's slug again: needed while it holds datasets, adapters or endpoints.",
    ),
]


@router.delete("/{team}", status_code=status.HTTP_204_NO_CONTENT, responses=WRITE)
def delete_team(
    access: TeamOwner,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    sync: TeamSync,
    confirm: Confirm = None,
) -> None:
    """Delete a team, everything registered in it and everything it stored.

    Refused (409) while it holds datasets, adapters or endpoints unless `confirm` repeats
    its slug, and while a worker still runs one of its jobs: cancel those first.
    """
    service.delete_team(
        session, access, store, settings.workspace, settings.job_stale_after_s, confirm, sync
    )


@router.put("/{team}/publish-policy", response_model=GatePolicy, responses=WRITE)
def set_publish_policy(body: GatePolicy, access: TeamAdmin, session: SessionDep) -> GatePolicy:
    """Set what an adapter version's evaluation must show before it can be published."""
    service.set_publish_policy(session, access, body.model_dump())
    return body


@router.get("/{team}/publish-policy", response_model=GatePolicy, responses=READ)
def get_publish_policy(access: TeamViewer) -> GatePolicy:
    """The team's publish gate: the policy it set, or the default every team starts with."""
    return team_policy(access.team.publish_policy)
