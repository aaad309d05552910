"""The database's own refusals of a duplicate or a dangling reference are 409s on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tailor.db.conflicts import conflict_from
from tailor.db.models import Membership, Role, Team
from tailor.errors import Conflict
from tests.conftest import create_team, create_user


def _refusal(session: Session, row: object) -> IntegrityError:
    session.add(row)
    with pytest.raises(IntegrityError) as caught:
        session.flush()
    session.rollback()
    return caught.value


def test_a_duplicate_is_a_conflict(session: Session) -> None:
    team = create_team(session, create_user(session))
    assert isinstance(conflict_from(_refusal(session, Team(slug=team.slug, name="x"))), Conflict)


def test_a_reference_to_nothing_is_a_conflict(session: Session) -> None:
    dangling = Membership(team_id=2**31 - 1, user_id=2**31 - 1, role=Role.member)
    assert isinstance(conflict_from(_refusal(session, dangling)), Conflict)


def test_a_missing_value_is_not_a_conflict(session: Session) -> None:
    # A NOT NULL violation is the server's bug: it stays a 500.
    assert conflict_from(_refusal(session, Team(slug=None, name="x"))) is None
