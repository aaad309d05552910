"""Console sessions: stored as hashes, ended by time, by sign-out and by revoking their token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db.base import utcnow
from tailor.db.models import ApiToken, WebSession
from tailor.errors import Forbidden, Unauthorized
from tailor.services.tokens.service import authenticate
from tailor.services.tokens.web_sessions import (
    CLI,
    CONSOLE,
    close_web_session,
    open_owned_session,
    open_web_session,
    web_session_principal,
)
from tests.conftest import create_token, create_user

HOUR = timedelta(hours=1)


def _signed_in(session: Session, scopes: tuple[str, ...] = ("read", "write")) -> str:
    token = create_token(session, create_user(session), scopes=scopes)
    return open_web_session(session, authenticate(session, token), HOUR)


def test_a_session_id_is_stored_only_as_a_hash(session: Session) -> None:
    session_id = _signed_in(session)
    stored = session.scalars(select(WebSession.session_hash)).all()
    assert session_id not in stored and len(stored) == 1


def test_a_session_acts_as_its_tokens_user(session: Session) -> None:
    user = create_user(session)
    token = create_token(session, user)
    session_id = open_web_session(session, authenticate(session, token), HOUR)
    assert web_session_principal(session, session_id).user_id == user.id


def test_a_closed_session_is_refused(session: Session) -> None:
    session_id = _signed_in(session)
    close_web_session(session, session_id)
    with pytest.raises(Unauthorized):
        web_session_principal(session, session_id)


def test_an_expired_session_is_refused(session: Session) -> None:
    session_id = _signed_in(session)
    for row in session.scalars(select(WebSession)):
        row.expires_at = utcnow() - timedelta(seconds=1)
    with pytest.raises(Unauthorized):
        web_session_principal(session, session_id)


def test_revoking_the_token_ends_its_sessions(session: Session) -> None:
    session_id = _signed_in(session)
    for row in session.scalars(select(ApiToken)):
        row.revoked_at = utcnow()
    with pytest.raises(Unauthorized):
        web_session_principal(session, session_id)


def test_an_inference_token_opens_no_session(session: Session) -> None:
    with pytest.raises(Forbidden):
        _signed_in(session, scopes=("inference",))


def test_signing_out_of_a_single_sign_on_session_revokes_its_own_token(session: Session) -> None:
    session_id, token = open_owned_session(
        session, create_user(session), kind=CONSOLE, session_lifetime=HOUR, token_lifetime=HOUR
    )
    assert web_session_principal(session, session_id).scopes == {"read", "write"}
    close_web_session(session, session_id)
    with pytest.raises(Unauthorized):
        authenticate(session, token)


def test_signing_out_of_a_token_sign_in_leaves_the_token_working(session: Session) -> None:
    user = create_user(session)
    token = create_token(session, user)
    close_web_session(session, open_web_session(session, authenticate(session, token), HOUR))
    assert authenticate(session, token).user_id == user.id


def test_a_cli_refresh_token_is_no_console_session(session: Session) -> None:
    refresh, _token = open_owned_session(
        session, create_user(session), kind=CLI, session_lifetime=HOUR, token_lifetime=HOUR
    )
    with pytest.raises(Unauthorized):
        web_session_principal(session, refresh)
