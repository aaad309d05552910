"""Console sign-in through the identity provider (OpenID Connect, code flow with PKCE)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.console.signin import safe_next
from api.console.web import PREFIX, SESSION_COOKIE, ConsoleRoute, redirect, render, set_cookie
from api.deps import OidcDep, SessionDep, SettingsDep, discard_changes
from tailor.config import Settings
from tailor.services.identity.oidc import ProviderError
from tailor.services.identity.signin import (
    SignInRefused,
    finish_console_sign_in,
    provider_error_text,
    start_console_sign_in,
    take_sign_in_request,
)
from tailor.services.tokens.web_sessions import close_web_session

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

# Binds a sign-in to the browser that started it. SameSite=Lax, unlike the session cookie:
# the provider's redirect back is a navigation from another site, which must carry it.
FLOW_COOKIE = "tailor_sso"
CALLBACK = PREFIX + "/sso/callback"


def _callback_url(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return settings.oidc_redirect_url or str(request.url_for("sso_callback"))


@router.get("/sign-in/sso")
def start(request: Request, session: SessionDep, client: OidcDep, next: str = "") -> Response:
    """Send the browser to the identity provider's sign-in."""
    try:
        started = start_console_sign_in(
            session, client, redirect_uri=_callback_url(request), next_path=safe_next(next)
        )
    except ProviderError as exc:
        discard_changes(request)
        return _refused(request, provider_error_text(exc), 502)
    session.commit()
    response = redirect(started.url)
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(
        FLOW_COOKIE,
        started.browser_secret,
        httponly=True,
        samesite="lax",
        path=CALLBACK,
        secure=secure,
        max_age=600,
    )
    return response


@router.get("/sso/callback", name="sso_callback")
def callback(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    client: OidcDep,
    state: str = "",
    code: str = "",
    error: str = "",
    iss: str | None = None,
) -> Response:
    """The provider's answer: check everything, then start a console session."""
    try:
        taken = take_sign_in_request(session, state, request.cookies.get(FLOW_COOKIE, ""))
    except SignInRefused as exc:
        session.commit()  # the state is used up even when its sign-in fails
        return _refused(request, str(exc))
    session.commit()
    if error or not code:
        return _refused(
            request, f"the identity provider did not sign you in ({error or 'no code'})"
        )
    try:
        session_id = finish_console_sign_in(
            session,
            client,
            settings,
            taken,
            code=code,
            issuer=iss,
            redirect_uri=_callback_url(request),
        )
    except SignInRefused as exc:
        discard_changes(request)
        return _refused(request, str(exc))
    except ProviderError as exc:
        discard_changes(request)
        return _refused(request, provider_error_text(exc), 502)
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        close_web_session(session, previous)
    session.commit()
    response = redirect(taken.next_path, "signed-in")
    set_cookie(request, response, SESSION_COOKIE, session_id)
    response.delete_cookie(FLOW_COOKIE, path=CALLBACK)
    return response


def _refused(request: Request, reason: str, status: int = 400) -> Response:
    response = render(
        request, "sign_in.html", status, next=PREFIX + "/teams", errors={"sso": reason}
    )
    response.delete_cookie(FLOW_COOKIE, path=CALLBACK)
    return response
