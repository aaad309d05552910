"""Console sign-ins: a random session id in the browser, its hash and expiry in the database.

The API token a person signs in with never reaches a cookie. A session acts with that
token's identity and scopes, so revoking the token ends it; signing out deletes it.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tailor.db.base import utcnow
from tailor.db.models import ApiToken, User, WebSession
from tailor.errors import Forbidden, Unauthorized
from tailor.security import hash_token
from tailor.services.tokens.admins import NO_GROUP_ADMINS, GroupAdmins
from tailor.services.tokens.service import issue_token, principal_of
from tailor.tenancy import Principal

CONSOLE = "console"
CLI = "cli"


def check_can_sign_in(principal: Principal) -> None:
    """Refuse tokens that are not a person's reading token (inference-only, machine)."""
    principal.require_scope("read")
    if principal.machine:
        raise Forbidden("a machine token cannot sign in to the console: use your own token")


def open_web_session(session: Session, principal: Principal, lifetime: timedelta) -> str:
    """A new sign-in for `principal`'s token; returns the id for the cookie (never stored)."""
    check_can_sign_in(principal)
    if principal.token_id is None:
        raise Unauthorized("sign in with an API token")
    now = utcnow()
    # Expired sign-ins are only ever refused; sweeping them here keeps the table small.
    session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    session_id = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            session_hash=hash_token(session_id),
            token_id=principal.token_id,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return session_id


def open_owned_session(
    session: Session,
    user: User,
    *,
    kind: str,
    session_lifetime: timedelta,
    token_lifetime: timedelta,
    admin: bool = False,
) -> tuple[str, str]:
    """A single sign-on session with a token of its own (read and write, bound to no team;
    with the admin scope too for a platform admin).

    Returns the session id (a console cookie, or a CLI's refresh token) and the token. Both
    are only stored hashed; ending the session revokes the token.
    """
    if user.is_machine:
        raise Forbidden("a machine principal cannot sign in")
    now = utcnow()
    session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    label = "console sign-in" if kind == CONSOLE else "CLI sign-in"
    row, token = issue_token(
        session,
        user,
        name=f"{label} (single sign-on)",
        scopes=["read", "write", "admin"] if admin else ["read", "write"],
        team_id=None,
        expires_at=now + token_lifetime,
    )
    session_id = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            session_hash=hash_token(session_id),
            token_id=row.id,
            expires_at=now + session_lifetime,
            kind=kind,
            owns_token=True,
        )
    )
    session.flush()
    return session_id, token


def web_session_principal(
    session: Session, session_id: str, admins: GroupAdmins = NO_GROUP_ADMINS
) -> Principal:
    """Who a session id signs in as; 401 if unknown, signed out, expired or its token revoked."""
    row = session.execute(
        select(WebSession.expires_at, ApiToken)
        .join(ApiToken, ApiToken.id == WebSession.token_id)
        .where(WebSession.session_hash == hash_token(session_id), WebSession.kind == CONSOLE)
    ).first()
    if row is None or row.expires_at <= utcnow():
        raise Unauthorized("signed out or expired: sign in again")
    principal = principal_of(session, row.ApiToken, admins)
    try:
        check_can_sign_in(principal)
    except Forbidden as exc:
        raise Unauthorized(exc.detail) from exc
    return principal


def close_web_session(session: Session, session_id: str, kind: str = CONSOLE) -> bool:
    """Sign out: the session id stops working at once, wherever a copy of it is.

    A single sign-on session's own token is revoked with it. False if there was none.
    """
    row = session.scalar(
        select(WebSession).where(
            WebSession.session_hash == hash_token(session_id), WebSession.kind == kind
        )
    )
    if row is None:
        return False
    if row.owns_token:
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == row.token_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    session.delete(row)
    session.flush()
    return True
