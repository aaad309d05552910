"""Adapters and their versions, publishing to an endpoint, and the IDE settings to paste."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response

from api.console.forms import FormErrors, optional_int, parse, service_errors
from api.console.web import (
    PREFIX,
    Admin,
    Form,
    Viewer,
    form_text,
    render,
    saved,
    team_router,
)
from api.deps import EndpointSync, SessionDep, SettingsDep
from tailor.errors import TailorError
from tailor.pagination import MAX_LIMIT
from tailor.registry import service as registry
from tailor.registry.gate import evaluation_gate
from tailor.registry.schemas import EndpointCreate
from tailor.serve.ide import ide_settings
from tailor.tenancy import TeamAccess

router = team_router()


def _base(access: TeamAccess) -> str:
    return f"{PREFIX}/teams/{access.team.slug}"


def _adapters_page(
    request: Request,
    access: TeamAccess,
    session: SessionDep,
    settings: SettingsDep,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    adapters, _ = registry.list_adapters(session, access, None, MAX_LIMIT)
    versions = {a.name: registry.list_versions(session, access, a.name) for a in adapters}
    endpoints = [
        registry.endpoint_out(session, ep, settings.serve_url)
        for ep in registry.list_endpoints(session, access)
    ]
    first = adapters[0].name if adapters else ""
    return render(
        request,
        "adapters.html",
        status,
        access=access,
        adapters=adapters,
        versions=versions,
        endpoints=endpoints,
        errors=errors or {},
        values={"name": first, "adapter": first, **(values or {})},
    )


@router.get("/adapters")
def adapter_list(
    request: Request, access: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    """Adapters with every version's lineage and metrics, the endpoints, and a publish form."""
    return _adapters_page(request, access, session, settings)


@router.post("/endpoints")
def publish(
    request: Request,
    form: Form,
    access: Admin,
    session: SessionDep,
    settings: SettingsDep,
    sync: EndpointSync,
) -> Response:
    """Publish an adapter version under a model name (the team's publish gate applies)."""
    values = {k: form_text(form, k) for k in ("name", "adapter", "version", "backend")}
    data: dict[str, Any] = {
        "name": values["name"] or values["adapter"],
        "adapter": values["adapter"],
        "version": optional_int(values["version"]),
        "backend": values["backend"] or "tailor",
        "override_gate": form.get("override_gate") == "on",
    }
    try:
        body = parse(EndpointCreate, data)
        serves = registry.pool_base(settings)
        ep = registry.publish(
            session, access, body, gate=evaluation_gate, on_change=sync, serves=serves
        )
    except (FormErrors, TailorError) as exc:
        session.rollback()
        errors = exc.errors if isinstance(exc, FormErrors) else service_errors(exc)
        return _adapters_page(request, access, session, settings, 422, errors, values)
    return saved(session, f"{_base(access)}/endpoints/{ep.name}", "published")


@router.get("/endpoints/{name}")
def endpoint_detail(
    name: str, request: Request, access: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    """An endpoint and the settings to paste into llm-vscode, Continue or an OpenAI client."""
    ep = registry.get_endpoint(session, access, name)
    ide = ide_settings(settings.serve_url, ep.name)
    snippets = [
        ("llm-vscode (settings.json)", "ide-llm-vscode", json.dumps(ide["llm-vscode"], indent=2)),
        ("Continue (config.json)", "ide-continue", json.dumps(ide["continue"], indent=2)),
        ("OpenAI Python client", "ide-openai", ide["openai"]["python"]),
    ]
    return render(
        request,
        "endpoint.html",
        access=access,
        endpoint=registry.endpoint_out(session, ep, settings.serve_url),
        snippets=snippets,
    )


@router.post("/endpoints/{name}/delete")
def unpublish(
    name: str, form: Form, access: Admin, session: SessionDep, sync: EndpointSync
) -> Response:
    """Stop serving an endpoint (its versions stay in the registry)."""
    registry.unpublish(session, access, name, on_change=sync)
    return saved(session, f"{_base(access)}/adapters", "unpublished")
