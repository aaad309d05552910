"""/v1/auth: the CLI's single sign-on (device authorization grant), refresh and sign-out."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.deps import OidcDep, SessionDep, SettingsDep
from api.responses import errors
from tailor.errors import Unauthorized, UpstreamUnavailable
from tailor.services.identity.oidc import ProviderError
from tailor.services.identity.schemas import (
    CliSessionOut,
    DevicePending,
    DevicePoll,
    DeviceStart,
    RefreshRequest,
)
from tailor.services.identity.signin import (
    CliSession,
    SignInRefused,
    finish_device_sign_in,
    provider_error_text,
    refresh_cli_session,
)
from tailor.services.tokens.web_sessions import CLI, close_web_session

router = APIRouter(prefix="/v1/auth", tags=["single sign-on"])


@router.post("/device", response_model=DeviceStart, responses=errors(404, 502))
def start_device(client: OidcDep) -> DeviceStart:
    """Begin a device sign-in at the identity provider (`tailor login --sso`)."""
    try:
        grant = client.start_device()
    except ProviderError as exc:
        raise UpstreamUnavailable(provider_error_text(exc)) from exc
    return DeviceStart(**grant.__dict__)


@router.post(
    "/device/token",
    response_model=CliSessionOut | DevicePending,
    responses={202: {"model": DevicePending}, **errors(404, 502)},
)
def poll_device(
    body: DevicePoll,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    client: OidcDep,
) -> CliSessionOut | DevicePending:
    """202 until the person confirmed the code at the provider; then a CLI session."""
    try:
        done = finish_device_sign_in(session, client, settings, body.device_code)
    except SignInRefused as exc:
        raise Unauthorized(f"single sign-on refused: {exc}") from exc
    except ProviderError as exc:
        raise UpstreamUnavailable(provider_error_text(exc)) from exc
    if not isinstance(done, CliSession):
        response.status_code = status.HTTP_202_ACCEPTED
        return DevicePending(interval=done.interval)
    return CliSessionOut(**done.__dict__)


@router.post("/refresh", response_model=CliSessionOut, responses=errors())
def refresh(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> CliSessionOut:
    """Replace a CLI session's access and refresh tokens (each refresh token works once)."""
    return CliSessionOut(**refresh_cli_session(session, settings, body.refresh_token).__dict__)


@router.post("/sign-out", status_code=status.HTTP_204_NO_CONTENT, responses=errors())
def sign_out(body: RefreshRequest, session: SessionDep) -> None:
    """End a CLI session: its refresh token and its access token stop working."""
    if not close_web_session(session, body.refresh_token, kind=CLI):
        raise Unauthorized("no such session: it has ended already")
