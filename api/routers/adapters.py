"""/v1/teams/{team}/adapters: the team's adapter registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, UploadFile, status

from api.deps import (
    DEFAULT_PAGE,
    Cursor,
    Limit,
    SenderDep,
    SessionDep,
    StoreDep,
    TeamAdmin,
    TeamMember,
    TeamViewer,
)
from api.responses import READ, WRITE, errors
from tailor.jobs.schemas import JobOut
from tailor.pagination import Page
from tailor.registry import operations, service
from tailor.registry.schemas import (
    AdapterOut,
    ComposeRequest,
    ExportLinks,
    ExportRequest,
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


@router.post(
    "/{name}/import",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=WRITE,
)
def import_adapter(
    name: str,
    access: TeamMember,
    session: SessionDep,
    store: StoreDep,
    sender: SenderDep,
    files: Annotated[
        list[UploadFile],
        File(
            description="A .tar/.zip of the adapter, or adapter_config.json and "
            "adapter_model.safetensors."
        ),
    ],
    base_model: Annotated[str | None, Form(max_length=500)] = None,
    base_revision: Annotated[str | None, Form(max_length=200)] = None,
    eval_dataset_id: Annotated[str | None, Form(max_length=32)] = None,
) -> JobOut:
    """Upload a PEFT LoRA adapter trained elsewhere as a new version of `name`.

    Pickles, truncated files, unsafe archives and non-LoRA configs are refused here with
    nothing stored; the job checks the config with PEFT and the shapes against the base
    before it registers the version and queues its evaluation.
    """
    uploads = [(f.filename, f.file) for f in files]
    return operations.start_import(
        session, access, store, name, uploads, base_model, base_revision, eval_dataset_id, sender
    )
