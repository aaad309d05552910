"""Console sessions: stored as hashes, ended by time, by sign-out and by revoking their token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db.base import utcnow
from tailor.db.models import ApiToken, WebSession
from tailor.errors import Forbidden, Unauthorized
from tailor.tokens.service import authenticate
from tailor.tokens.web_sessions import (
    close_web_session,
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
