"""Registering and listing adapter versions; the caller's transaction commits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tailor import audit
from tailor.db.models import Adapter, AdapterVersion, Endpoint
from tailor.errors import Conflict, InvalidInput, NotFound
from tailor.pagination import paginate
from tailor.services.adapters.schemas import AdapterOut, VersionOut
from tailor.tenancy import TeamAccess, owned, team_select


def version_prefix(team: str, name: str, version: int) -> str:
    """Where a version's files live in the object store."""
    return f"teams/{team}/adapters/{name}/{version}/"


def next_version(session: Session, team_id: int, name: str) -> int:
    """The number the next version of adapter `name` will get."""
    latest = session.scalar(
        select(func.max(AdapterVersion.version))
        .join(Adapter, Adapter.id == AdapterVersion.adapter_id)
        .where(Adapter.team_id == team_id, Adapter.name == name)
    )
    return (latest or 0) + 1


def register_version(
    session: Session,
    *,
    team_id: int,
    team_slug: str,
    name: str,
    version: int,
    manifest: dict[str, Any],
    job_id: int | None = None,
) -> AdapterVersion:
    """Record a version whose files are already in the store (from `tailor.json`)."""
    adapter = session.scalar(
        select(Adapter).where(Adapter.team_id == team_id, Adapter.name == name)
    )
    if adapter is None:
        adapter = Adapter(team_id=team_id, name=name, base_model=manifest["base_model"])
        session.add(adapter)
        session.flush()
    elif adapter.base_model != manifest["base_model"]:
        raise InvalidInput(
            f"adapter '{name}' is on base {adapter.base_model!r}; a version on "
            f"{manifest['base_model']!r} needs another adapter name"
        )
    row = AdapterVersion(
        adapter_id=adapter.id,
        team_id=team_id,
        version=version,
        base_model=manifest["base_model"],
        base_revision=manifest.get("base_revision"),
        dataset_uid=manifest.get("dataset_id"),
        job_id=job_id,
        origin=manifest.get("origin", "trained"),
        spec=manifest.get("spec", {}),
        metrics=manifest.get("metrics", {}),
        evaluation=manifest.get("evaluation", {}),
        parents=list(manifest.get("parents", [])),
        size_bytes=manifest.get("size_bytes") or 0,
        checksum=manifest.get("checksum") or "",
        prefix=version_prefix(team_slug, name, version),
    )
    session.add(row)
    session.flush()
    return row


def list_adapters(
    session: Session, access: TeamAccess, cursor: str | None, limit: int
) -> tuple[list[AdapterOut], str | None]:
    """The team's adapters."""
    rows, nxt = paginate(session, team_select(Adapter, access), Adapter.id, cursor, limit)
    latest = dict(
        session.execute(
            select(AdapterVersion.adapter_id, func.max(AdapterVersion.version))
            .where(AdapterVersion.adapter_id.in_([a.id for a in rows]))
            .group_by(AdapterVersion.adapter_id)
        ).all()
    )
    return [
        AdapterOut(
            name=a.name,
            base_model=a.base_model,
            description=a.description,
            latest_version=latest.get(a.id),
            created_at=a.created_at,
        )
        for a in rows
    ], nxt


def get_adapter(session: Session, access: TeamAccess, name: str) -> Adapter:
    """One adapter of the team, or 404."""
    return owned(session, Adapter, access, "adapter", name=name)


def get_version(
    session: Session, access: TeamAccess, name: str, version: int | None = None
) -> tuple[Adapter, AdapterVersion]:
    """A version (default the latest) of one of the team's adapters, or 404."""
    adapter = get_adapter(session, access, name)
    stmt = select(AdapterVersion).where(AdapterVersion.adapter_id == adapter.id)
    stmt = (
        stmt.where(AdapterVersion.version == version)
        if version
        else stmt.order_by(AdapterVersion.version.desc()).limit(1)
    )
    row = session.scalar(stmt)
    if row is None:
        raise NotFound(f"adapter '{name}' has no version {version or '(none yet)'}")
    return adapter, row


def list_versions(session: Session, access: TeamAccess, name: str) -> list[VersionOut]:
    """Every version of an adapter, oldest first, with what serves each."""
    adapter = get_adapter(session, access, name)
    rows = session.scalars(
        select(AdapterVersion)
        .where(AdapterVersion.adapter_id == adapter.id)
        .order_by(AdapterVersion.version)
    ).all()
    return [VersionOut.of(adapter, v, users_of(session, v)) for v in rows]


def users_of(session: Session, version: AdapterVersion) -> list[str]:
    """Names of the endpoints that serve `version` now."""
    return list(session.scalars(select(Endpoint.name).where(Endpoint.version_id == version.id)))


def delete_version(
    session: Session,
    access: TeamAccess,
    name: str,
    version: int,
    delete_files: Callable[[str], Any],
) -> None:
    """Delete a version that no endpoint serves, with its files."""
    _adapter, row = get_version(session, access, name, version)
    serving = users_of(session, row)
    if serving:
        raise Conflict(
            f"{name}@{version} serves endpoint(s) {', '.join(serving)}: promote "
            "another version or delete the endpoint first"
        )
    session.execute(
        update(Endpoint)
        .where(Endpoint.previous_version_id == row.id)
        .values(previous_version_id=None)
    )
    delete_files(row.prefix)
    session.delete(row)
    audit.record(
        session,
        access.principal,
        "adapter.version.delete",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/adapters/{name}/{version}",
    )
