"""/v1/admin/group-mappings: identity-provider groups that give teams and roles at sign-in."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import CurrentPrincipal, SessionDep
from api.responses import READ, WRITE, errors
from tailor.services.identity import mappings
from tailor.services.identity.schemas import GroupMappingCreate, GroupMappingOut

router = APIRouter(prefix="/v1/admin/group-mappings", tags=["single sign-on"])


@router.get("", response_model=list[GroupMappingOut], responses=READ)
def list_mappings(session: SessionDep, principal: CurrentPrincipal) -> list[GroupMappingOut]:
    """Every group mapping (platform admins)."""
    return mappings.list_mappings(session, principal)


@router.post(
    "",
    response_model=GroupMappingOut,
    status_code=status.HTTP_201_CREATED,
    responses=errors(403, 404, 409),
)
def create_mapping(
    body: GroupMappingCreate, session: SessionDep, principal: CurrentPrincipal
) -> GroupMappingOut:
    """Members of the group get the role in the team from their next sign-in on."""
    return mappings.create_mapping(session, principal, body)


@router.delete("/{mapping_id}", status_code=status.HTTP_204_NO_CONTENT, responses=WRITE)
def delete_mapping(mapping_id: int, session: SessionDep, principal: CurrentPrincipal) -> None:
    """Remove a mapping; the memberships it gave go at each member's next sign-in."""
    mappings.delete_mapping(session, principal, mapping_id)
