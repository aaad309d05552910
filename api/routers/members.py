"""/v1/teams/{team}/members: who is in a team, with which role."""

from __future__ import annotations

from fastapi import APIRouter, Path, status

from api.deps import DEFAULT_PAGE, Cursor, Limit, SessionDep, TeamAdmin, TeamViewer
from api.responses import READ, WRITE
from tailor.pagination import Page
from tailor.services.teams import service
from tailor.services.teams.schemas import MemberCreate, MemberOut, MemberUpdate

router = APIRouter(prefix="/v1/teams/{team}/members", tags=["members"])
UserId = Path(ge=1, le=2**31 - 1)


@router.post("", response_model=MemberOut, status_code=status.HTTP_201_CREATED, responses=WRITE)
def add_member(body: MemberCreate, access: TeamAdmin, session: SessionDep) -> MemberOut:
    """Add a person by e-mail."""
    return service.add_member(session, access, body)


@router.get("", response_model=Page[MemberOut], responses=READ)
def list_members(
    access: TeamViewer, session: SessionDep, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE
) -> Page[MemberOut]:
    """Members of the team."""
    items, nxt = service.list_members(session, access, cursor, limit)
    return Page(items=items, next_cursor=nxt)


@router.get("/{user_id}", response_model=MemberOut, responses=READ)
def get_member(access: TeamViewer, session: SessionDep, user_id: int = UserId) -> MemberOut:
    """One member."""
    return service.get_member(session, access, user_id)


@router.patch("/{user_id}", response_model=MemberOut, responses=WRITE)
def update_member(
    body: MemberUpdate, access: TeamAdmin, session: SessionDep, user_id: int = UserId
) -> MemberOut:
    """Change a member's role."""
    return service.update_member(session, access, user_id, body)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=WRITE)
def remove_member(access: TeamAdmin, session: SessionDep, user_id: int = UserId) -> None:
    """Remove a member from the team."""
    service.remove_member(session, access, user_id)
