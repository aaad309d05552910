"""Group mappings: which identity-provider groups give which team and role (platform admins)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor import audit
from tailor.db.models import GroupMapping, Team
from tailor.errors import Forbidden, NotFound
from tailor.services.identity.schemas import GroupMappingCreate, GroupMappingOut
from tailor.tenancy import Principal


def _require_admin(principal: Principal) -> None:
    if not principal.platform_admin:
        raise Forbidden("only platform admins map identity-provider groups to teams")


def list_mappings(session: Session, principal: Principal) -> list[GroupMappingOut]:
    """Every mapping, by group then team."""
    _require_admin(principal)
    rows = session.execute(
        select(GroupMapping, Team.slug)
        .join(Team, Team.id == GroupMapping.team_id)
        .order_by(GroupMapping.group_name, Team.slug)
    ).all()
    return [_out(m, slug) for m, slug in rows]


def create_mapping(
    session: Session, principal: Principal, body: GroupMappingCreate
) -> GroupMappingOut:
    """Map a group to a team and role; it applies from each member's next sign-in (409 if the
    group already maps to that team)."""
    _require_admin(principal)
    team = session.scalar(select(Team).where(Team.slug == body.team))
    if team is None:
        raise NotFound(f"team '{body.team}' not found")
    row = GroupMapping(group_name=body.group, team_id=team.id, role=body.role)
    session.add(row)
    session.flush()
    audit.record(
        session,
        principal,
        "group_mapping.create",
        team_id=team.id,
        resource=f"group-mappings/{row.id}",
        detail={"group": body.group, "team": team.slug, "role": body.role.value},
    )
    return _out(row, team.slug)


def delete_mapping(session: Session, principal: Principal, mapping_id: int) -> None:
    """Remove a mapping; the memberships it gave go at each member's next sign-in."""
    _require_admin(principal)
    row = session.get(GroupMapping, mapping_id)
    if row is None:
        raise NotFound(f"group mapping {mapping_id} not found")
    slug = session.get_one(Team, row.team_id).slug
    session.delete(row)
    audit.record(
        session,
        principal,
        "group_mapping.delete",
        team_id=row.team_id,
        resource=f"group-mappings/{mapping_id}",
        detail={"group": row.group_name, "team": slug, "role": row.role.value},
    )


def _out(row: GroupMapping, slug: str) -> GroupMappingOut:
    return GroupMappingOut(
        id=row.id, group=row.group_name, team=slug, role=row.role, created_at=row.created_at
    )
