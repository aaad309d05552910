"""Console sign-ins: a random session id in the browser, its hash and expiry in the database.

The API token a person signs in with never reaches a cookie. A session acts with that
token's identity and scopes, so revoking the token ends it; signing out deletes it.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tailor.db.base import utcnow
from tailor.db.models import ApiToken, WebSession
from tailor.errors import Forbidden, Unauthorized
from tailor.security import hash_token
from tailor.tenancy import Principal
from tailor.tokens.service import principal_of


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


def web_session_principal(session: Session, session_id: str) -> Principal:
    """Who a session id signs in as; 401 if unknown, signed out, expired or its token revoked."""
    row = session.execute(
        select(WebSession.expires_at, ApiToken)
        .join(ApiToken, ApiToken.id == WebSession.token_id)
        .where(WebSession.session_hash == hash_token(session_id))
    ).first()
    if row is None or row.expires_at <= utcnow():
        raise Unauthorized("signed out or expired: sign in again")
    principal = principal_of(session, row.ApiToken)
    try:
        check_can_sign_in(principal)
    except Forbidden as exc:
        raise Unauthorized(exc.detail) from exc
    return principal


def close_web_session(session: Session, session_id: str) -> None:
    """Sign out: the session id stops working at once, wherever a copy of it is."""
    session.execute(delete(WebSession).where(WebSession.session_hash == hash_token(session_id)))
