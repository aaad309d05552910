"""The console's plumbing: templates, the signed-in caller, CSRF, and HTML error pages.

Pages call the same `tailor/` service functions the REST routers call; this module only
turns cookies into a `Principal`, forms into checked data, and errors into pages.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from api.deps import SessionDep, SettingsDep, discard_changes
from tailor.config import Settings
from tailor.db.conflicts import conflict_from
from tailor.db.models import Role
from tailor.errors import NotFound, TailorError, Unauthorized
from tailor.services.tokens.admins import GroupAdmins
from tailor.services.tokens.web_sessions import web_session_principal
from tailor.tenancy import Principal, TeamAccess, team_for

HERE = Path(__file__).parent
SESSION_COOKIE = "tailor_console"
CSRF_COOKIE = "tailor_csrf"
CSRF_FIELD = "csrf_token"
PREFIX = "/console"

templates = Jinja2Templates(directory=str(HERE / "templates"))


class SignInRequired(Exception):
    """No valid session cookie: the page redirects to the sign-in form."""


class CsrfRefused(Exception):
    """A state-changing form arrived without the caller's CSRF token."""


# --- CSRF: a random nonce in an HttpOnly cookie, and an HMAC of it (bound to the session
# cookie) in every form. A forged cross-site form can know neither.


def _csrf_key(settings: Settings) -> bytes:
    return hashlib.sha256(("tailor-console-csrf:" + settings.encryption_key()).encode()).digest()


def _csrf_value(settings: Settings, nonce: str, session_token: str) -> str:
    bound = nonce + "|" + hashlib.sha256(session_token.encode()).hexdigest()
    return hmac.new(_csrf_key(settings), bound.encode(), hashlib.sha256).hexdigest()


def _nonce(request: Request) -> str:
    nonce = getattr(request.state, "csrf_nonce", None) or request.cookies.get(CSRF_COOKIE)
    if not nonce:
        nonce = secrets.token_urlsafe(24)
        request.state.csrf_nonce_new = True
    request.state.csrf_nonce = nonce
    return str(nonce)


def csrf_token(request: Request, settings: Settings) -> str:
    """The value every form of this page must send back."""
    return _csrf_value(settings, _nonce(request), request.cookies.get(SESSION_COOKIE) or "")


async def checked_form(request: Request, settings: SettingsDep) -> FormData:
    """The submitted form, refused unless it carries this session's CSRF token."""
    form = await request.form()
    nonce = request.cookies.get(CSRF_COOKIE)
    sent = form.get(CSRF_FIELD)
    token = request.cookies.get(SESSION_COOKIE) or ""
    if not nonce or not isinstance(sent, str):
        raise CsrfRefused()
    if not hmac.compare_digest(sent, _csrf_value(settings, nonce, token)):
        raise CsrfRefused()
    return form


Form = Annotated[FormData, Depends(checked_form)]


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    """A console cookie: never readable by scripts, never sent by another site, HTTPS-only
    when the console is served over HTTPS."""
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(
        name, value, httponly=True, samesite="strict", path=PREFIX, secure=secure, max_age=None
    )


# --- who is calling


def console_principal(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
    """The caller, from the session cookie; otherwise the page redirects to sign in."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        raise SignInRequired()
    try:
        principal = web_session_principal(session, session_id, GroupAdmins.of(settings))
    except Unauthorized as exc:
        raise SignInRequired() from exc
    # End the token's last-used write now: on SQLite a page that holds it while reading
    # would block the next request (a redirect, a live refresh) or be refused by it.
    session.commit()
    request.state.principal = principal
    return principal


Caller = Annotated[Principal, Depends(console_principal)]


def _team_access(minimum: Role) -> Callable[..., TeamAccess]:
    def dep(team: str, session: SessionDep, principal: Caller) -> TeamAccess:
        return team_for(session, principal, team, minimum)

    return dep


Viewer = Annotated[TeamAccess, Depends(_team_access(Role.viewer))]
Member = Annotated[TeamAccess, Depends(_team_access(Role.member))]
Admin = Annotated[TeamAccess, Depends(_team_access(Role.admin))]


def is_platform_admin(principal: Principal) -> bool:
    """Platform admins (admin scope on an admin user) see the admin view."""
    return principal.platform_admin


def platform_admin(principal: Caller) -> Principal:
    """The caller if a platform admin; anyone else is told the page does not exist."""
    if not is_platform_admin(principal):
        raise NotFound("page not found")
    return principal


PlatformAdmin = Annotated[Principal, Depends(platform_admin)]


# --- rendering


def render(
    request: Request,
    template: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page with the layout's context (caller, CSRF token, notice) filled in."""
    settings: Settings = request.app.state.settings
    principal: Principal | None = getattr(request.state, "principal", None)
    context.setdefault("access", None)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "me": principal,
            "admin": bool(principal and is_platform_admin(principal)),
            "csrf": csrf_token(request, settings),
            "csrf_field": CSRF_FIELD,
            "notice": NOTICES.get(request.query_params.get("done", "")),
            "sso_name": settings.oidc_display_name if settings.oidc_issuer else None,
            **context,
        },
        status_code=status,
    )
    if getattr(request.state, "csrf_nonce_new", False):
        set_cookie(request, response, CSRF_COOKIE, request.state.csrf_nonce)
    # Pages show team data: never keep them in a shared or back-button cache.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    return response


def redirect(url: str, done: str | None = None) -> RedirectResponse:
    """See-other after a successful form, with a notice key (never user text) to show."""
    if done:
        url += ("&" if "?" in url else "?") + "done=" + quote(done)
    return RedirectResponse(url, status_code=303)


# Fixed notices: the query string only picks one, so it cannot inject text into a page.
NOTICES = {
    "signed-in": "Signed in.",
    "signed-out": "Signed out.",
    "team-created": "Team created.",
    "repository-registered": "Repository registered. Its credential is stored encrypted.",
    "repository-deleted": "Repository removed.",
    "harvest-started": "Harvest started.",
    "cancel-requested": "Cancellation requested.",
    "finetune-started": "Fine-tune started.",
    "finetune-started-over-budget": (
        "Fine-tune started. The team is past its monthly budget's soft limit: see Costs."
    ),
    "evaluation-started": "Evaluation started.",
    "published": "Endpoint published.",
    "unpublished": "Endpoint removed.",
    "member-added": "Member added.",
    "publish-gate-saved": "Publish gate saved.",
    "member-updated": "Role changed.",
    "member-removed": "Member removed.",
    "token-revoked": "Token revoked.",
    "quota-set": "Quota saved.",
}


class ConsoleRoute(APIRoute):
    """Turns errors into HTML: sign-in redirects, 403 for CSRF, the error's own status else."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler (dependencies included) with the console's error pages."""
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                discard_changes(request)
                target = request.url.path if request.method == "GET" else PREFIX
                return RedirectResponse(f"{PREFIX}/sign-in?next={quote(target)}", status_code=303)
            except CsrfRefused:
                discard_changes(request)
                return render(
                    request,
                    "error.html",
                    403,
                    title="Form expired",
                    detail="This form was missing its security token or it did not match. "
                    "Reload the page and submit again.",
                )
            except (TailorError, IntegrityError) as exc:
                # An error page changes nothing, whatever the page wrote before it failed.
                discard_changes(request)
                error = conflict_from(exc) if isinstance(exc, IntegrityError) else exc
                if error is None:
                    raise
                return render(
                    request, "error.html", error.status, title=error.title, detail=error.detail
                )

        return console_handler


def form_text(form: FormData, name: str) -> str:
    """A text field, stripped; missing fields read as empty."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def team_router() -> APIRouter:
    """A router for the pages of one team, under /console/teams/{team}."""
    return APIRouter(
        prefix=PREFIX + "/teams/{team}", route_class=ConsoleRoute, include_in_schema=False
    )


def saved(session: Session, url: str, done: str) -> RedirectResponse:
    """Commit, then see-other: the next page must find the change, and must not wait on it."""
    session.commit()
    return redirect(url, done)
