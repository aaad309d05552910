"""Registering, changing and removing a team's repositories."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from sqlalchemy.orm import Session

from tailor import audit
from tailor.db.models import Repository
from tailor.errors import Conflict, InvalidInput
from tailor.pagination import paginate
from tailor.queue import CONTEXT_TASK, send_after_commit
from tailor.security import CredentialCipher
from tailor.services.repositories.schemas import RepositoryCreate, RepositoryOut, RepositoryUpdate
from tailor.stages.harvest.urls import UrlPolicy, check_git_url
from tailor.tenancy import TeamAccess, owned, team_select


def to_out(repo: Repository) -> RepositoryOut:
    """Response shape of a repository."""
    return RepositoryOut(
        name=repo.name,
        url=repo.url,
        branch=repo.branch,
        include=repo.include,
        exclude=repo.exclude,
        credential_kind=repo.credential_kind,
        has_credential=repo.credential_encrypted is not None,
        last_harvested_commit=repo.last_harvested_commit,
        created_at=repo.created_at,
        updated_at=repo.updated_at,
    )


def _valid_url(url: str, policy: UrlPolicy | None, kind: str) -> str:
    try:
        url = check_git_url(url, policy)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="url") from exc
    is_ssh = url.startswith("ssh://") or "://" not in url
    if kind == "ssh_key" and not is_ssh:
        raise InvalidInput("an ssh_key credential needs an ssh:// or git@host:path URL")
    if kind == "token" and is_ssh:
        raise InvalidInput("a token credential needs an https:// URL; use ssh_key for SSH")
    return url


def create_repository(
    session: Session,
    access: TeamAccess,
    body: RepositoryCreate,
    cipher: CredentialCipher,
    policy: UrlPolicy | None = None,
) -> Repository:
    """Register a repository for the team; `policy` says which URLs (the settings' own)."""
    url = _valid_url(body.url, policy, body.credential_kind)
    if session.scalar(team_select(Repository, access).where(Repository.name == body.name)):
        raise Conflict(f"repository '{body.name}' already exists in team '{access.team.slug}'")
    repo = Repository(
        team_id=access.team_id,
        name=body.name,
        url=url,
        branch=body.branch,
        include=body.include,
        exclude=body.exclude,
        credential_kind=body.credential_kind,
        credential_encrypted=(
            cipher.encrypt(body.credential.get_secret_value()) if body.credential else None
        ),
    )
    session.add(repo)
    session.flush()
    audit.record(
        session,
        access.principal,
        "repository.create",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/repositories/{repo.name}",
        detail={"url": url, "branch": body.branch, "credential_kind": repo.credential_kind},
    )
    return repo


def list_repositories(
    session: Session, access: TeamAccess, cursor: str | None, limit: int
) -> tuple[Sequence[Repository], str | None]:
    """The team's repositories in registration order."""
    return paginate(session, team_select(Repository, access), Repository.id, cursor, limit)


def get_repository(session: Session, access: TeamAccess, name: str) -> Repository:
    """One repository of the team, or 404."""
    return owned(session, Repository, access, "repository", name=name)


def update_repository(
    session: Session,
    access: TeamAccess,
    name: str,
    body: RepositoryUpdate,
    cipher: CredentialCipher,
    policy: UrlPolicy | None = None,
) -> Repository:
    """Change a repository; a new credential replaces the old one."""
    repo = get_repository(session, access, name)
    kind = body.credential_kind or repo.credential_kind
    if body.url is not None or body.credential_kind is not None:
        repo.url = _valid_url(body.url or repo.url, policy, kind)
    for field in ("branch", "include", "exclude"):
        value = getattr(body, field)
        if value is not None:
            setattr(repo, field, value)
    if body.credential_kind is not None:
        repo.credential_kind = body.credential_kind
        repo.credential_encrypted = (
            cipher.encrypt(body.credential.get_secret_value()) if body.credential else None
        )
    changed = sorted(body.model_dump(exclude_none=True, exclude={"credential"}))
    audit.record(
        session,
        access.principal,
        "repository.update",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/repositories/{repo.name}",
        detail={"changed": changed, "credential_rotated": body.credential is not None},
    )
    return repo


def delete_repository(
    session: Session, access: TeamAccess, name: str, sender: Celery | None = None
) -> None:
    """Forget a repository (datasets already built from it stay); with a `sender`, the team's
    code index is rebuilt without it once this has committed."""
    repo = get_repository(session, access, name)
    session.delete(repo)
    audit.record(
        session,
        access.principal,
        "repository.delete",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/repositories/{name}",
    )
    if sender is not None:
        send_after_commit(session, sender, CONTEXT_TASK, access.team_id)


def read_credential(repo: Repository, cipher: CredentialCipher) -> str | None:
    """The plaintext credential, for the harvester only; never logged or returned."""
    if repo.credential_encrypted is None:
        return None
    return cipher.decrypt(repo.credential_encrypted)
