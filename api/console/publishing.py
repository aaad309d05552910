"""Adapters and their versions, publishing to an endpoint, and the IDE settings to paste."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from api.console.forms import FormErrors, optional_float, optional_int, parse, service_errors
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
from tailor.services.adapters import service as registry
from tailor.services.endpoints import service as endpoint_service
from tailor.services.endpoints.gate import evaluation_gate, team_policy
from tailor.services.endpoints.ide import endpoint_ide_settings
from tailor.services.endpoints.schemas import EndpointCreate
from tailor.services.teams import service as teams
from tailor.stages.evaluate.spec import GatePolicy
from tailor.tenancy import TeamAccess

router = team_router()


def _base(access: TeamAccess) -> str:
    return f"{PREFIX}/teams/{access.team.slug}"


# The publish gate's form: field -> (label, hint); its values are the team's GatePolicy.
POLICY_FIELDS: dict[str, tuple[str, str]] = {
    "max_eval_loss_increase": ("Eval loss may rise by", "Nats per token over the base's."),
    "min_edit_similarity_ci_low_points": (
        "Edit similarity: CI lower end at least (points)",
        "Lower end of the 95% CI of adapter - base; a small negative margin passes an "
        "adapter as good as its base.",
    ),
    "min_fim_exact_match_delta_points": (
        "Exact match gain at least (points)",
        "Empty: not checked.",
    ),
    "max_humaneval_pass1_drop_points": ("HumanEval pass@1 may drop by (points)", ""),
}
POLICY_CHECKS = {
    "require_eval_loss": "Refuse an evaluation without held-out eval loss",
    "require_humaneval": "Refuse an evaluation without HumanEval",
}


def _adapters_page(
    request: Request,
    access: TeamAccess,
    session: SessionDep,
    settings: SettingsDep,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    policy_errors: dict[str, str] | None = None,
    policy_values: dict[str, Any] | None = None,
) -> Response:
    adapters, _ = registry.list_adapters(session, access, None, MAX_LIMIT)
    versions = {a.name: registry.list_versions(session, access, a.name) for a in adapters}
    endpoints = [
        endpoint_service.endpoint_out(session, ep, settings.serve_url)
        for ep in endpoint_service.list_endpoints(session, access)
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
        policy=team_policy(access.team.publish_policy).model_dump(),
        policy_fields=POLICY_FIELDS,
        policy_checks=POLICY_CHECKS,
        policy_errors=policy_errors or {},
        policy_values=policy_values,
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
        serves = endpoint_service.pool_base(settings)
        ep = endpoint_service.publish(
            session, access, body, gate=evaluation_gate, on_change=sync, serves=serves,
            gpu_type=settings.default_gpu_type,
        )  # fmt: skip
    except (FormErrors, TailorError) as exc:
        session.rollback()
        errors = exc.errors if isinstance(exc, FormErrors) else service_errors(exc)
        return _adapters_page(request, access, session, settings, 422, errors, values)
    return saved(session, f"{_base(access)}/endpoints/{ep.name}", "published")


@router.post("/publish-policy")
def set_policy(
    request: Request, form: Form, access: Admin, session: SessionDep, settings: SettingsDep
) -> Response:
    """Set the team's publish gate (every field; empty exact-match gain: not checked)."""
    values: dict[str, Any] = {k: form_text(form, k) for k in POLICY_FIELDS}
    data: dict[str, Any] = {k: optional_float(v) for k, v in values.items()}
    for name in POLICY_CHECKS:
        values[name] = data[name] = form.get(name) == "on"
    try:
        policy = parse(GatePolicy, data)
    except FormErrors as exc:
        return _adapters_page(
            request, access, session, settings, 422, policy_errors=exc.errors, policy_values=values
        )
    teams.set_publish_policy(session, access, policy.model_dump())
    return saved(session, f"{_base(access)}/adapters", "publish-gate-saved")


@router.get("/endpoints/{name}")
def endpoint_detail(
    name: str, request: Request, access: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    """An endpoint and the settings to paste into llm-vscode, Continue or an OpenAI client."""
    ep = endpoint_service.get_endpoint(session, access, name)
    ide = endpoint_ide_settings(session, access, name, settings.serve_url)
    snippets = [
        (c["title"], f"ide-{key.replace('.', '-')}", c["file"], c["content"], c["steps"])
        for key, c in ide["clients"].items()
    ]
    return render(
        request,
        "endpoint.html",
        access=access,
        endpoint=endpoint_service.endpoint_out(session, ep, settings.serve_url),
        snippets=snippets,
    )


@router.post("/endpoints/{name}/delete")
def unpublish(
    name: str, form: Form, access: Admin, session: SessionDep, sync: EndpointSync
) -> Response:
    """Stop serving an endpoint (its versions stay in the registry)."""
    endpoint_service.unpublish(session, access, name, on_change=sync)
    return saved(session, f"{_base(access)}/adapters", "unpublished")
