"""Single sign-on flows: the console's authorization code flow and the CLI's device grant.

Each ends in a session with a token of its own (see `open_owned_session`), after the ID token
passed every check and the person's teams followed their groups.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tailor import audit
from tailor.config import Settings
from tailor.db.base import utcnow
from tailor.db.models import ApiToken, SignInRequest, User, WebSession
from tailor.errors import Unauthorized
from tailor.security import hash_token
from tailor.services.identity.oidc import (
    OidcClient,
    Pending,
    ProviderError,
    TokenRefused,
    pkce_pair,
)
from tailor.services.identity.people import provision, sync_memberships
from tailor.services.tokens.admins import GroupAdmins
from tailor.services.tokens.web_sessions import CLI, CONSOLE, open_owned_session
from tailor.tenancy import Principal

# How long a person may take at the provider's sign-in page.
REQUEST_LIFETIME = timedelta(minutes=10)


class SignInRefused(Exception):
    """A sign-in that must not complete; the message is for the person."""


@dataclass(frozen=True)
class Started:
    """Where to send the browser, and the secret that binds the sign-in to it (a cookie)."""

    url: str
    browser_secret: str


@dataclass(frozen=True)
class Taken:
    """A pending sign-in, taken (used up) by its callback."""

    nonce: str
    code_verifier: str
    next_path: str


@dataclass(frozen=True)
class CliSession:
    """What `tailor login --sso` keeps: a short-lived token and the refresh token."""

    access_token: str
    refresh_token: str
    expires_in: int
    email: str


def start_console_sign_in(
    session: Session, client: OidcClient, *, redirect_uri: str, next_path: str
) -> Started:
    """Record a pending sign-in and build the provider's URL for it."""
    now = utcnow()
    session.execute(delete(SignInRequest).where(SignInRequest.expires_at <= now))
    state, nonce, browser = (secrets.token_urlsafe(32) for _ in range(3))
    verifier, challenge = pkce_pair()
    url = client.authorization_url(
        redirect_uri=redirect_uri, state=state, nonce=nonce, code_challenge=challenge
    )
    session.add(
        SignInRequest(
            state_hash=hash_token(state),
            browser_hash=hash_token(browser),
            nonce=nonce,
            code_verifier=verifier,
            next_path=next_path,
            expires_at=now + REQUEST_LIFETIME,
        )
    )
    session.flush()
    return Started(url=url, browser_secret=browser)


def take_sign_in_request(session: Session, state: str, browser_secret: str) -> Taken:
    """Use up the pending sign-in `state` names: a second use finds nothing.

    The caller commits before going on, so that a sign-in that fails later stays used.
    """
    row = session.scalar(select(SignInRequest).where(SignInRequest.state_hash == hash_token(state)))
    if row is None:
        raise SignInRefused("this sign-in was already used or never started here: sign in again")
    # Deleted by id with a row count, so two callbacks racing on one state cannot both win.
    gone = session.execute(delete(SignInRequest).where(SignInRequest.id == row.id))
    if gone.rowcount != 1:  # type: ignore[attr-defined]
        raise SignInRefused("this sign-in was already used: sign in again")
    if row.expires_at <= utcnow():
        raise SignInRefused("this sign-in took too long: sign in again")
    if not secrets.compare_digest(row.browser_hash, hash_token(browser_secret)):
        raise SignInRefused("this sign-in was started in another browser: sign in again")
    return Taken(nonce=row.nonce, code_verifier=row.code_verifier, next_path=row.next_path)


def finish_console_sign_in(
    session: Session,
    client: OidcClient,
    settings: Settings,
    taken: Taken,
    *,
    code: str,
    issuer: str | None,
    redirect_uri: str,
) -> str:
    """Redeem the code, check the ID token, provision the person; the new session's id."""
    # RFC 9207: an answer that names another issuer came from another provider (mix-up).
    if issuer is not None and issuer != client.issuer:
        raise SignInRefused("the answer came from another identity provider")
    try:
        id_token = client.exchange_code(
            code=code, code_verifier=taken.code_verifier, redirect_uri=redirect_uri
        )
        claims = client.verify_id_token(id_token, nonce=taken.nonce)
    except TokenRefused as exc:
        raise SignInRefused(f"the identity provider's answer was refused: {exc}") from exc
    user = _signed_in_user(session, client, claims)
    lifetime = timedelta(hours=settings.console_session_hours)
    admin = _platform_admin(session, settings, user)
    session_id, _token = open_owned_session(
        session, user, kind=CONSOLE, session_lifetime=lifetime, token_lifetime=lifetime, admin=admin
    )
    _audit_sign_in(session, user, "console", admin)
    return session_id


def _signed_in_user(session: Session, client: OidcClient, claims: dict[str, object]) -> User:
    groups = client.groups_of(claims)
    user = provision(session, client.issuer, claims, groups)
    sync_memberships(session, user, groups)
    return user


def _platform_admin(session: Session, settings: Settings, user: User) -> bool:
    """Whether the person is a platform admin now: an admin user, or by their groups."""
    return user.is_admin or GroupAdmins.of(settings).include(session, user.id)


def _audit_sign_in(session: Session, user: User, surface: str, admin: bool) -> None:
    actor = Principal(user_id=user.id, email=user.email, scopes=frozenset())
    audit.record(
        session,
        actor,
        "user.sign_in",
        resource=f"users/{user.id}",
        detail={"via": "single sign-on", "surface": surface, "platform_admin": admin},
    )


def finish_device_sign_in(
    session: Session, client: OidcClient, settings: Settings, device_code: str
) -> CliSession | Pending:
    """Poll the provider for the device code; a CLI session once the person confirmed."""
    try:
        answer = client.poll_device(device_code)
        if isinstance(answer, Pending):
            return answer
        claims = client.verify_id_token(answer, nonce=None)
    except TokenRefused as exc:
        raise SignInRefused(str(exc)) from exc
    user = _signed_in_user(session, client, claims)
    admin = _platform_admin(session, settings, user)
    refresh, access = open_owned_session(
        session,
        user,
        kind=CLI,
        session_lifetime=timedelta(days=settings.cli_session_days),
        token_lifetime=timedelta(minutes=settings.cli_access_minutes),
        admin=admin,
    )
    _audit_sign_in(session, user, "cli", admin)
    return CliSession(access, refresh, settings.cli_access_minutes * 60, user.email)


def refresh_cli_session(session: Session, settings: Settings, refresh_token: str) -> CliSession:
    """A new access token and refresh token for a CLI session; the old ones stop working."""
    row = session.scalar(
        select(WebSession).where(
            WebSession.session_hash == hash_token(refresh_token), WebSession.kind == CLI
        )
    )
    if row is None or row.expires_at <= utcnow():
        raise Unauthorized("this CLI session has ended: run 'tailor login --sso' again")
    # Deleted by id with a row count: of two refreshes racing with one token, one wins.
    gone = session.execute(delete(WebSession).where(WebSession.id == row.id))
    if gone.rowcount != 1:  # type: ignore[attr-defined]
        raise Unauthorized("this refresh token was used already: run 'tailor login --sso' again")
    old = session.get_one(ApiToken, row.token_id)
    user = session.get_one(User, old.user_id)
    session.execute(
        update(ApiToken)
        .where(ApiToken.id == old.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    remaining = row.expires_at - utcnow()
    refresh, access = open_owned_session(
        session,
        user,
        kind=CLI,
        session_lifetime=remaining,
        token_lifetime=min(remaining, timedelta(minutes=settings.cli_access_minutes)),
        admin=_platform_admin(session, settings, user),
    )
    return CliSession(access, refresh, settings.cli_access_minutes * 60, user.email)


def provider_error_text(exc: ProviderError) -> str:
    """What to tell a person when the provider is unreachable or misconfigured."""
    return f"single sign-on is unavailable: {exc}"
