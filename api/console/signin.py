"""Signing in with an API token, signing out, and the list of the caller's teams."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from api.console.forms import FormErrors, parse, service_errors
from api.console.web import (
    PREFIX,
    SESSION_COOKIE,
    Caller,
    ConsoleRoute,
    Form,
    form_text,
    redirect,
    render,
    saved,
    set_cookie,
)
from api.deps import DEFAULT_PAGE, SessionDep, SettingsDep, StoreDep
from tailor.errors import TailorError, Unauthorized
from tailor.pagination import MAX_LIMIT
from tailor.teams import service as teams
from tailor.teams.schemas import TeamCreate
from tailor.tokens.service import authenticate

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)


def _safe_next(target: str) -> str:
    # Only paths inside the console: an absolute or protocol-relative URL would be an open
    # redirect to another site.
    if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX + "/teams"


@router.get("")
def index() -> RedirectResponse:
    """The console starts at the caller's teams."""
    return redirect(PREFIX + "/teams")


@router.get("/sign-in")
def sign_in_form(request: Request, next: str = "") -> Response:
    """The sign-in form: one field, an API token."""
    return render(request, "sign_in.html", next=_safe_next(next), errors={})


@router.post("/sign-in")
def sign_in(request: Request, form: Form, session: SessionDep) -> Response:
    """Check the token and keep it in an HttpOnly, SameSite=Strict cookie."""
    token = form_text(form, "token")
    target = _safe_next(form_text(form, "next"))
    if not token:
        errors = {"token": "Enter an API token (it starts with tlr_)."}
        return render(request, "sign_in.html", 422, next=target, errors=errors)
    try:
        authenticate(session, token)
    except Unauthorized as exc:
        session.rollback()
        errors = {"token": f"This token was not accepted: {exc.detail}."}
        return render(request, "sign_in.html", 422, next=target, errors=errors)
    response = saved(session, target, "signed-in")
    set_cookie(request, response, SESSION_COOKIE, token)
    return response


@router.post("/sign-out")
def sign_out(form: Form) -> Response:
    """Forget the session cookie (the token itself stays valid until revoked)."""
    response = redirect(PREFIX + "/sign-in")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


@router.get("/teams")
def team_list(request: Request, principal: Caller, session: SessionDep) -> Response:
    """The caller's teams, and a form to create one."""
    rows, _ = teams.list_teams(session, principal, None, MAX_LIMIT)
    return render(request, "teams.html", teams=rows, errors={}, values={})


@router.post("/teams")
def create_team(
    request: Request,
    form: Form,
    principal: Caller,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
) -> Response:
    """Create a team owned by the caller."""
    values = {"slug": form_text(form, "slug"), "name": form_text(form, "name")}
    try:
        body = parse(TeamCreate, values)
        team = teams.create_team(session, principal, body, store, settings.workspace)
    except (FormErrors, TailorError) as exc:
        session.rollback()
        errors = exc.errors if isinstance(exc, FormErrors) else service_errors(exc)
        if isinstance(exc, TailorError) and exc.status == 409:
            errors = {"slug": exc.detail}
        rows, _ = teams.list_teams(session, principal, None, DEFAULT_PAGE)
        return render(request, "teams.html", 422, teams=rows, errors=errors, values=values)
    return saved(session, f"{PREFIX}/teams/{team.slug}", "team-created")
