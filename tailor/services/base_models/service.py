"""The catalog of base models: admins register them, everything else resolves names through it.

No request ever names a path: `TrainSpec.base_model`, an import's `base_model`, a
transfer's `target_base` and an evaluation's base are catalog names, resolved here to the
source an admin registered. Workers load only what `resolve` returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tailor import audit
from tailor.base_names import BASE_NAME_PATTERN, BaseModelCreate, source_kind
from tailor.db.models import Adapter, BaseModelEntry, Job, JobState
from tailor.errors import Conflict, Forbidden, InvalidInput, NotFound
from tailor.tenancy import Principal

HOW_TO_LIST = (
    "list the catalog with `GET /v1/base-models` (`tailor base list`); a platform admin "
    "registers bases with `POST /v1/admin/base-models` (`tailor admin base-model add`)"
)
# Jobs in flight that name a base themselves (the others reach it through an adapter).
_BASE_FIELDS = {"finetune": ("base_model",), "adapter-import": ("base_model",)}


class UnknownBaseModel(InvalidInput):
    """A request named a base model the catalog does not hold."""

    type_slug = "unknown-base-model"
    title = "Unknown base model"


def require_admin(principal: Principal) -> None:
    """Refuse a catalog change by anyone but a platform admin with the admin scope."""
    if not (principal.is_admin and "admin" in principal.scopes):
        raise Forbidden("only a platform admin (a token with the admin scope) manages base models")


def find(session: Session, name: str) -> BaseModelEntry | None:
    """The catalog entry called `name`, if any."""
    return session.scalar(select(BaseModelEntry).where(BaseModelEntry.name == name))


def resolve(session: Session, name: str, field: str = "base_model") -> BaseModelEntry:
    """The catalog entry a request names; UnknownBaseModel (422) naming the catalog if none."""
    if not re.fullmatch(BASE_NAME_PATTERN, name or ""):
        # Not echoed: a path or URL may carry what its sender would not want in a log.
        raise UnknownBaseModel(
            f"{field} must be the name of a base model in the platform's catalog, not a path "
            f"or URL; {HOW_TO_LIST}",
            field=field,
        )
    entry = find(session, name)
    if entry is None:
        raise UnknownBaseModel(
            f"{field} '{name}' is not a base model of the platform's catalog; {HOW_TO_LIST}",
            field=field,
        )
    return entry


def check_revision(entry: BaseModelEntry, revision: str | None, field: str) -> None:
    """A request may repeat the catalog's revision of a base, never choose another."""
    if revision is not None and revision != entry.revision:
        raise InvalidInput(
            f"base model '{entry.name}' is at revision {entry.revision or '(none)'} in the "
            f"catalog; leave {field} out (the catalog decides which revision a base is)",
            field=field,
        )


def resolve_source(sessions: sessionmaker[Session], name: str) -> tuple[str, str | None]:
    """(source, revision) of a catalog name, read in a transaction of its own (workers)."""
    with sessions() as session:
        entry = resolve(session, name)
        return entry.source, entry.revision


def list_entries(session: Session) -> Sequence[BaseModelEntry]:
    """Every catalog entry, by name."""
    return session.scalars(select(BaseModelEntry).order_by(BaseModelEntry.name)).all()


def add(session: Session, principal: Principal, body: BaseModelCreate) -> BaseModelEntry:
    """Register a base model (admins only); 409 if the name is taken."""
    require_admin(principal)
    if find(session, body.name) is not None:
        raise Conflict(
            f"base model '{body.name}' is registered already; remove it first, or pick another name"
        )
    entry = BaseModelEntry(
        name=body.name,
        source=body.source,
        revision=body.revision,
        family=body.family or local_family(body.source),
        description=body.description,
        created_by=principal.user_id,
    )
    session.add(entry)
    session.flush()
    audit.record(
        session,
        principal,
        "base-model.add",
        resource=f"base-models/{entry.name}",
        detail={"source": entry.source, "revision": entry.revision},
    )
    return entry


def register_directory(session: Session, name: str, directory: Path) -> BaseModelEntry:
    """Register a directory this machine built (the embedded bootstrap, no API yet).

    Idempotent for the same directory; a name that holds another source is refused.
    """
    body = BaseModelCreate(name=name, source=str(directory.resolve()))
    entry = find(session, name)
    if entry is not None:
        if entry.source != body.source:
            raise Conflict(
                f"base model '{name}' is registered already with source {entry.source}; "
                "remove it first (`tailor admin base-model remove`) or pick another name"
            )
        return entry
    entry = BaseModelEntry(
        name=body.name, source=body.source, family=local_family(body.source), description=""
    )
    session.add(entry)
    session.flush()
    audit.record(
        session,
        None,
        "base-model.add",
        resource=f"base-models/{name}",
        detail={"source": body.source},
    )
    return entry


def remove(session: Session, principal: Principal, name: str) -> None:
    """Remove a base model no adapter and no job in flight uses (admins only)."""
    require_admin(principal)
    entry = find(session, name)
    if entry is None:
        raise NotFound(f"base model '{name}' is not in the catalog")
    users = in_use(session, name)
    if users:
        raise Conflict(
            f"base model '{name}' is in use ({'; '.join(users)}): its adapters would no longer "
            "load. Delete them, or wait for the jobs, first"
        )
    session.delete(entry)
    audit.record(session, principal, "base-model.remove", resource=f"base-models/{name}")


def in_use(session: Session, name: str) -> list[str]:
    """What still needs base `name`: adapters on it and jobs in flight naming it."""
    users = []
    adapters = session.scalar(
        select(func.count()).select_from(Adapter).where(Adapter.base_model == name)
    )
    if adapters:
        users.append(f"{adapters} adapter(s)")
    pending = session.scalars(
        select(Job).where(
            Job.state.in_([JobState.queued, JobState.running]),
            Job.kind.in_([*_BASE_FIELDS, "adapter-transfer"]),
        )
    )
    jobs = sum(1 for job in pending if name in _bases_named(job))
    if jobs:
        users.append(f"{jobs} job(s) in flight")
    return users


def _bases_named(job: Job) -> set[str]:
    names = {str(job.spec.get(f)) for f in _BASE_FIELDS.get(job.kind, ())}
    if job.kind == "adapter-transfer":
        names.add(str((job.spec.get("transfer") or {}).get("target_base")))
    return names


def local_config(source: str) -> dict[str, object] | None:
    """A directory source's config.json, when this machine can read it; else None."""
    if source_kind(source) != "local":
        return None
    try:
        config = json.loads((Path(source) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def local_family(source: str) -> str:
    """`model_type` from a directory source's config.json, when this machine can read it."""
    family = (local_config(source) or {}).get("model_type")
    return family if isinstance(family, str) and re.fullmatch(r"[a-z0-9_]{1,64}", family) else ""
