"""/v1/teams/{team}/repositories: the git repositories a team trains on."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import (
    DEFAULT_PAGE,
    CipherDep,
    Cursor,
    Limit,
    SenderDep,
    SessionDep,
    SettingsDep,
    TeamAdmin,
    TeamViewer,
)
from api.responses import READ, WRITE
from tailor.pagination import Page
from tailor.services.repositories import service
from tailor.services.repositories.schemas import RepositoryCreate, RepositoryOut, RepositoryUpdate
from tailor.stages.harvest.urls import UrlPolicy

router = APIRouter(prefix="/v1/teams/{team}/repositories", tags=["repositories"])


@router.post("", response_model=RepositoryOut, status_code=status.HTTP_201_CREATED, responses=WRITE)
def create_repository(
    body: RepositoryCreate,
    access: TeamAdmin,
    session: SessionDep,
    cipher: CipherDep,
    settings: SettingsDep,
) -> RepositoryOut:
    """Register a repository; its credential is encrypted and never shown again."""
    repo = service.create_repository(session, access, body, cipher, UrlPolicy.of(settings))
    return service.to_out(repo)


@router.get("", response_model=Page[RepositoryOut], responses=READ)
def list_repositories(
    access: TeamViewer, session: SessionDep, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE
) -> Page[RepositoryOut]:
    """The team's repositories."""
    rows, nxt = service.list_repositories(session, access, cursor, limit)
    return Page(items=[service.to_out(r) for r in rows], next_cursor=nxt)


@router.get("/{name}", response_model=RepositoryOut, responses=READ)
def get_repository(name: str, access: TeamViewer, session: SessionDep) -> RepositoryOut:
    """One repository."""
    return service.to_out(service.get_repository(session, access, name))


@router.patch("/{name}", response_model=RepositoryOut, responses=WRITE)
def update_repository(
    name: str,
    body: RepositoryUpdate,
    access: TeamAdmin,
    session: SessionDep,
    cipher: CipherDep,
    settings: SettingsDep,
) -> RepositoryOut:
    """Change a repository or rotate its credential."""
    repo = service.update_repository(session, access, name, body, cipher, UrlPolicy.of(settings))
    return service.to_out(repo)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=WRITE)
def delete_repository(name: str, access: TeamAdmin, session: SessionDep, sender: SenderDep) -> None:
    """Forget a repository (its code leaves the team's completion context)."""
    service.delete_repository(session, access, name, sender)
