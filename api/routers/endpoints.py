"""/v1/teams/{team}/endpoints: publish adapter versions for the team's IDEs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from api.deps import (
    EndpointSync,
    SenderDep,
    SessionDep,
    SettingsDep,
    TeamAdmin,
    TeamMember,
    TeamViewer,
)
from api.responses import READ, WRITE
from tailor.jobs.schemas import JobOut
from tailor.services.endpoints import service
from tailor.services.endpoints.gate import evaluation_gate
from tailor.services.endpoints.ide import endpoint_ide_settings
from tailor.services.endpoints.schemas import (
    ContextSettings,
    EndpointCreate,
    EndpointOut,
    Promote,
)
from tailor.services.endpoints.served_check import check_after_publish, queue_served_check

router = APIRouter(prefix="/v1/teams/{team}/endpoints", tags=["endpoints"])


@router.post("", response_model=EndpointOut, status_code=status.HTTP_201_CREATED, responses=WRITE)
def publish(
    body: EndpointCreate,
    access: TeamAdmin,
    session: SessionDep,
    settings: SettingsDep,
    sync: EndpointSync,
    sender: SenderDep,
) -> EndpointOut:
    """Publish an adapter version (the team's publish gate applies).

    The version must be on the base model its serving pool serves (409 naming both).

    On a cluster the endpoint's InferenceEndpoint is applied once this has committed. On one
    machine, where the gateway serves it at once, a served check is queued too (see
    `POST /{name}/served-check`).
    """
    serves = service.pool_base(settings)
    ep = service.publish(
        session, access, body, gate=evaluation_gate, on_change=sync, serves=serves,
        gpu_type=settings.default_gpu_type,
    )  # fmt: skip
    if settings.executor == "local" and settings.served_check_after_publish:
        check_after_publish(session, access, ep.name, sender, settings)
    return service.endpoint_out(session, ep, settings.serve_url)


@router.post(
    "/{name}/served-check",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=WRITE,
)
def served_check(
    name: str, access: TeamMember, session: SessionDep, settings: SettingsDep, sender: SenderDep
) -> JobOut:
    """Check that the endpoint serves what was evaluated: the version's evaluation FIM tasks
    go to it over HTTP, as an IDE sends them, and must agree with the adapter run in process.

    The job fails naming how they differ (a wrong FIM layout, an adapter not applied); its
    result is the agreement report either way.
    """
    return queue_served_check(session, access, name, sender, settings)


@router.get("", response_model=list[EndpointOut], responses=READ)
def list_endpoints(
    access: TeamViewer, session: SessionDep, settings: SettingsDep
) -> list[EndpointOut]:
    """The team's endpoints."""
    return [
        service.endpoint_out(session, ep, settings.serve_url)
        for ep in service.list_endpoints(session, access)
    ]


@router.get("/{name}", response_model=EndpointOut, responses=READ)
def get_endpoint(
    name: str, access: TeamViewer, session: SessionDep, settings: SettingsDep
) -> EndpointOut:
    """One endpoint."""
    return service.endpoint_out(
        session, service.get_endpoint(session, access, name), settings.serve_url
    )


@router.put("/{name}/context", response_model=EndpointOut, responses=WRITE)
def set_context(
    name: str,
    body: ContextSettings,
    access: TeamAdmin,
    session: SessionDep,
    settings: SettingsDep,
    sync: EndpointSync,
) -> EndpointOut:
    """Turn the endpoint's repository context on or off, or change its budget in tokens (on a
    cluster, the endpoint's pods retrieve it: its InferenceEndpoint is re-applied)."""
    ep = service.set_context(session, access, name, body, on_change=sync)
    return service.endpoint_out(session, ep, settings.serve_url)


@router.get("/{name}/ide", response_model=dict[str, Any], responses=READ)
def get_ide_settings(
    name: str, access: TeamViewer, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Settings to paste into llm-vscode, Continue (config.yaml), Tabby's agent, llm.nvim or an
    OpenAI client, with the model's FIM tokens and context window (the token left for the user:
    `clients.<name>.content` is the text to paste, `steps` what to do around it)."""
    return endpoint_ide_settings(session, access, name, settings.serve_url)


@router.post("/{name}/promote", response_model=EndpointOut, responses=WRITE)
def promote(
    name: str,
    body: Promote,
    access: TeamAdmin,
    session: SessionDep,
    settings: SettingsDep,
    sync: EndpointSync,
) -> EndpointOut:
    """Serve another version of the endpoint's adapter from the next request on.

    On a cluster the endpoint's pods roll over to the new version without downtime.
    """
    serves = service.pool_base(settings)
    ep = service.promote(
        session, access, name, body, gate=evaluation_gate, on_change=sync, serves=serves
    )
    return service.endpoint_out(session, ep, settings.serve_url)


@router.post("/{name}/rollback", response_model=EndpointOut, responses=WRITE)
def rollback(
    name: str, access: TeamAdmin, session: SessionDep, settings: SettingsDep, sync: EndpointSync
) -> EndpointOut:
    """Go back to the version served before the last promotion."""
    ep = service.rollback(session, access, name, on_change=sync)
    return service.endpoint_out(session, ep, settings.serve_url)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=WRITE)
def unpublish(name: str, access: TeamAdmin, session: SessionDep, sync: EndpointSync) -> None:
    """Stop serving an endpoint (on a cluster its InferenceEndpoint is deleted)."""
    service.unpublish(session, access, name, on_change=sync)
