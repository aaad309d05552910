"""/v1/base-models (what a request may name) and /v1/admin/base-models (the catalog itself)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from api.deps import CurrentPrincipal, SessionDep
from api.responses import errors
from tailor.base_names import BaseModelCreate, BaseModelListed, BaseModelOut
from tailor.services.base_models import service
from tailor.tenancy import Principal

router = APIRouter(tags=["base models"])


def platform_admin(principal: CurrentPrincipal) -> Principal:
    """The caller, if a platform admin with the admin scope; 403 before any body is read."""
    service.require_admin(principal)
    return principal


PlatformAdmin = Annotated[Principal, Depends(platform_admin)]


@router.get("/v1/base-models", response_model=list[BaseModelListed], responses=errors(403))
def list_names(principal: CurrentPrincipal, session: SessionDep) -> list[BaseModelListed]:
    """The base models a fine-tune, import or transfer may name (`base_model`)."""
    principal.require_scope("read")
    return [BaseModelListed.model_validate(e) for e in service.list_entries(session)]


@router.get("/v1/admin/base-models", response_model=list[BaseModelOut], responses=errors(403))
def list_catalog(principal: PlatformAdmin, session: SessionDep) -> list[BaseModelOut]:
    """The catalog with each base's source and revision (platform admins)."""
    return [BaseModelOut.model_validate(e) for e in service.list_entries(session)]


@router.post(
    "/v1/admin/base-models",
    response_model=BaseModelOut,
    status_code=status.HTTP_201_CREATED,
    responses=errors(403, 409),
)
def add(body: BaseModelCreate, principal: PlatformAdmin, session: SessionDep) -> BaseModelOut:
    """Register a base model: a hub id, an s3:// prefix or a directory on the workers."""
    return BaseModelOut.model_validate(service.add(session, principal, body))


@router.delete(
    "/v1/admin/base-models/{name:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(403, 404, 409),
)
def remove(name: str, principal: PlatformAdmin, session: SessionDep) -> None:
    """Remove a base model that no adapter and no job in flight uses."""
    service.remove(session, principal, name)
