"""Signing in with an API token, signing out, and the list of the caller's teams."""

from __future__ import annotations

from datetime import timedelta

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
from api.deps import DEFAULT_PAGE, SessionDep, SettingsDep, StoreDep, TeamSync
from tailor.errors import Forbidden, TailorError, Unauthorized
from tailor.pagination import MAX_LIMIT
from tailor.services.teams import service as teams
from tailor.services.teams.schemas import TeamCreate
from tailor.services.tokens.service import authenticate
from tailor.services.tokens.web_sessions import close_web_session, open_web_session

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)


def safe_next(target: str) -> str:
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
    return render(request, "sign_in.html", next=safe_next(next), errors={})


@router.post("/sign-in")
def sign_in(request: Request, form: Form, session: SessionDep, settings: SettingsDep) -> Response:
    """Check the token and start a session: the cookie gets a random id, never the token."""
    token = form_text(form, "token")
    target = safe_next(form_text(form, "next"))
    if not token:
        errors = {"token": "Enter an API token (it starts with tlr_)."}
        return render(request, "sign_in.html", 422, next=target, errors=errors)
    try:
        lifetime = timedelta(hours=settings.console_session_hours)
        session_id = open_web_session(session, authenticate(session, token), lifetime)
    except (Unauthorized, Forbidden) as exc:
        session.rollback()
        errors = {"token": f"This token was not accepted: {exc.detail}."}
        return render(request, "sign_in.html", 422, next=target, errors=errors)
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:  # signing in again (maybe as someone else) ends the session it replaces
        close_web_session(session, previous)
    response = saved(session, target, "signed-in")
    set_cookie(request, response, SESSION_COOKIE, session_id)
    return response


@router.post("/sign-out")
def sign_out(request: Request, form: Form, session: SessionDep) -> Response:
    """End the session on the server, so a copy of the cookie no longer works either."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        close_web_session(session, session_id)
    response = saved(session, PREFIX + "/sign-in", "signed-out")
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
    sync: TeamSync,
) -> Response:
    """Create a team owned by the caller."""
    values = {"slug": form_text(form, "slug"), "name": form_text(form, "name")}
    try:
        body = parse(TeamCreate, values)
        team = teams.create_team(session, principal, body, store, settings.workspace, sync)
    except (FormErrors, TailorError) as exc:
        session.rollback()
        errors = exc.errors if isinstance(exc, FormErrors) else service_errors(exc)
        if isinstance(exc, TailorError) and exc.status == 409:
            errors = {"slug": exc.detail}
        rows, _ = teams.list_teams(session, principal, None, DEFAULT_PAGE)
        return render(request, "teams.html", 422, teams=rows, errors=errors, values=values)
    return saved(session, f"{PREFIX}/teams/{team.slug}", "team-created")
