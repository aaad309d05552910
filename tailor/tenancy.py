"""Tenancy: the one place that decides which team a caller may see and what it may do there.

Every query for team data goes through `team_for` (which team, with which role) and
`owned` / `team_select` (rows of that team only). A team the caller does not belong to
is reported exactly like a team that does not exist: 404, never 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tailor.db.models import Membership, Role, Team
from tailor.errors import Forbidden, NotFound

T = TypeVar("T")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's user, the token's team binding and scopes.

    A machine principal (a CI or automation token) is a user of its own; `issued_by` names
    the person who created it, so the audit log can say both.
    """

    user_id: int
    email: str
    is_admin: bool = False
    token_team_id: int | None = None
    scopes: frozenset[str] = field(default_factory=lambda: frozenset({"read", "write"}))
    token_id: int | None = None
    machine: bool = False
    issued_by: str | None = None

    @property
    def platform_admin(self) -> bool:
        """A platform admin acting as one (the admin scope on an admin user)."""
        return self.is_admin and "admin" in self.scopes

    def require_scope(self, scope: str) -> None:
        """Refuse a call the token's scopes do not cover."""
        if scope in self.scopes or "admin" in self.scopes:
            return
        hint = ""
        if self.scopes == {"inference"}:
            hint = ": an inference token works only at the inference gateway (IDE completions)"
        raise Forbidden(f"this token lacks the '{scope}' scope{hint}")


@dataclass(frozen=True)
class TeamAccess:
    """A team the caller may see, with the caller's effective role in it."""

    team: Team
    role: Role
    principal: Principal

    @property
    def team_id(self) -> int:
        """The team's primary key."""
        return self.team.id


def team_for(session: Session, principal: Principal, slug: str, minimum: Role) -> TeamAccess:
    """The team `slug` as the caller sees it; 404 if not theirs, 403 if their role is too weak."""
    team = session.scalar(select(Team).where(Team.slug == slug))
    role = _role_in(session, principal, team) if team else None
    if team is None or role is None:
        raise NotFound(f"team '{slug}' not found")
    if minimum != Role.viewer:
        principal.require_scope("write")
    if role.rank < minimum.rank:
        raise Forbidden(f"this action needs the '{minimum.value}' role in team '{slug}'")
    return TeamAccess(team=team, role=role, principal=principal)


def _role_in(session: Session, principal: Principal, team: Team) -> Role | None:
    if principal.token_team_id is not None and principal.token_team_id != team.id:
        return None
    if principal.platform_admin:
        return Role.owner
    membership = session.scalar(
        select(Membership).where(
            Membership.team_id == team.id, Membership.user_id == principal.user_id
        )
    )
    return membership.role if membership else None


def check_can_grant(access: TeamAccess, role: Role) -> None:
    """Refuse giving (or changing) a role stronger than the caller's own: only owners and
    platform admins make owners, whether of a person or of a machine token."""
    if role.rank > access.role.rank:
        raise Forbidden(f"a {access.role.value} cannot grant or change the '{role.value}' role")


def team_select(model: type[T], access: TeamAccess) -> Select[Any]:
    """A SELECT of `model` rows restricted to the caller's team."""
    return select(model).where(model.team_id == access.team_id)  # type: ignore[attr-defined]


def owned(session: Session, model: type[T], access: TeamAccess, what: str, **by: Any) -> T:
    """The one row of `model` in the caller's team matching `by`, or 404."""
    stmt = team_select(model, access).filter_by(**by)
    row: T | None = session.scalar(stmt)
    if row is None:
        key = ", ".join(f"{k}={v!r}" for k, v in by.items())
        raise NotFound(f"{what} ({key}) not found in team '{access.team.slug}'")
    return row
