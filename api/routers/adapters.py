"""/v1/teams/{team}/adapters: the team's adapter registry."""

from __future__ import annotations

import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import (
    DEFAULT_PAGE,
    Cursor,
    Limit,
    SenderDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    TeamAdmin,
    TeamMember,
    TeamViewer,
)
from api.responses import READ, WRITE, errors
from api.uploads import receive_multipart
from tailor.errors import InvalidInput
from tailor.jobs.schemas import JobOut
from tailor.pagination import Page
from tailor.services.adapter_jobs import operations
from tailor.services.adapters import service, uploads
from tailor.services.adapters.schemas import (
    AdapterOut,
    ComposeRequest,
    ExportLinks,
    ExportRequest,
    ImportForm,
    TransferRequest,
    VersionOut,
)

router = APIRouter(prefix="/v1/teams/{team}/adapters", tags=["adapters"])
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("", response_model=Page[AdapterOut], responses=READ)
def list_adapters(
    access: TeamViewer, session: SessionDep, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE
) -> Page[AdapterOut]:
    """The team's adapters with their latest version."""
    items, nxt = service.list_adapters(session, access, cursor, limit)
    return Page(items=items, next_cursor=nxt)


@router.get("/{name}/versions", response_model=list[VersionOut], responses=READ)
def list_versions(name: str, access: TeamViewer, session: SessionDep) -> list[VersionOut]:
    """Every version of an adapter with lineage, metrics and evaluation."""
    return service.list_versions(session, access, name)


@router.get("/{name}/versions/{version}", response_model=VersionOut, responses=READ)
def get_version(name: str, version: Version, access: TeamViewer, session: SessionDep) -> VersionOut:
    """One version."""
    adapter, row = service.get_version(session, access, name, version)
    return VersionOut.of(adapter, row, service.users_of(session, row))


@router.delete(
    "/{name}/versions/{version}", status_code=status.HTTP_204_NO_CONTENT, responses=WRITE
)
def delete_version(
    name: str, version: Version, access: TeamAdmin, session: SessionDep, store: StoreDep
) -> None:
    """Delete a version no endpoint serves."""
    service.delete_version(session, access, name, version, store.delete_prefix)


@router.post(
    "/{name}/compose",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=WRITE,
)
def compose(
    name: str,
    body: ComposeRequest,
    access: TeamMember,
    session: SessionDep,
    store: StoreDep,
    sender: SenderDep,
) -> JobOut:
    """Combine versions of one base (linear, svd or cat) into a new version of `name`.

    Different bases and rank rules the combination breaks are refused here; the job
    registers the result with its parents as lineage and queues its evaluation.
    """
    return operations.start_compose(session, access, store, name, body, sender)


@router.post(
    "/{name}/versions/{version}/export",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=WRITE,
)
def export(
    name: str,
    version: Version,
    access: TeamMember,
    session: SessionDep,
    sender: SenderDep,
    body: ExportRequest | None = None,
) -> JobOut:
    """Merge a version into its base and export a sharded safetensors checkpoint."""
    return operations.start_export(session, access, name, version, body or ExportRequest(), sender)


@router.get(
    "/{name}/versions/{version}/export", response_model=ExportLinks, responses=errors(403, 404, 501)
)
def export_links(
    name: str,
    version: Version,
    access: TeamViewer,
    session: SessionDep,
    store: StoreDep,
    expires_s: Annotated[
        int, Query(ge=60, le=operations.MAX_LINK_EXPIRY_S, description="Link lifetime.")
    ] = 3600,
) -> ExportLinks:
    """Presigned download links of a finished export; they expire (S3 stores only: 501 else)."""
    return operations.export_links(session, access, store, name, version, expires_s)


@router.post(
    "/{name}/versions/{version}/transfer",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=WRITE,
)
def transfer(
    name: str,
    version: Version,
    body: TransferRequest,
    access: TeamMember,
    session: SessionDep,
    sender: SenderDep,
) -> JobOut:
    """Re-home a version on another base of the same architecture and shapes.

    The job refuses a target whose architecture, sizes or module shapes differ, and
    queues an evaluation of the new version on the new base.
    """
    return operations.start_transfer(session, access, name, version, body, sender)


def _import_body() -> dict[str, Any]:
    """The upload's multipart schema: the files and ImportForm's text fields."""
    form = ImportForm.model_json_schema()
    files = {
        "type": "array",
        "items": {"type": "string", "format": "binary"},
        "description": "A .tar/.zip of the adapter, or adapter_config.json and "
        "adapter_model.safetensors.",
    }
    schema = {
        "type": "object",
        "required": ["files"],
        "properties": {"files": files, **form["properties"]},
    }
    body = {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    return {"requestBody": body}


@router.post(
    "/{name}/import",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(403, 404, 409, 413, 429),
    openapi_extra=_import_body(),
)
async def import_adapter(
    name: str,
    request: Request,
    access: TeamMember,
    session: SessionDep,
    store: StoreDep,
    sender: SenderDep,
    settings: SettingsDep,
) -> JobOut:
    """Upload a PEFT LoRA adapter trained elsewhere as a new version of `name`.

    The body is read as a stream and refused (413) as soon as a file or the whole upload
    passes the platform's caps; a user has at most a few uploads in flight (429). Pickles,
    truncated files, unsafe archives, zip bombs, non-LoRA configs and module patterns that
    are not globs are refused here with nothing stored; the job checks the config with PEFT
    and the shapes against the base before it registers the version.
    """
    limits = uploads.UploadLimits.of(settings)
    sessions = request.app.state.sessionmaker
    user = access.principal.user_id
    slot = await run_in_threadpool(uploads.acquire_slot, sessions, user, limits)
    try:
        with tempfile.TemporaryDirectory(prefix="tailor-import-") as tmp:
            work = FilePath(tmp)
            fields = set(ImportForm.model_fields)
            budget = uploads.UploadBudget(limits)
            received = await receive_multipart(request, work / "files", budget, "files", fields)
            try:
                form = ImportForm.model_validate(received.fields)
            except ValidationError as exc:
                raise InvalidInput(f"invalid form field: {exc.errors()[0]['msg']}") from exc
            return await run_in_threadpool(
                operations.start_import,
                session, access, store, name, received.files, work, form, sender, limits.archive,
            )  # fmt: skip
    finally:
        await run_in_threadpool(uploads.release_slot, sessions, slot)
