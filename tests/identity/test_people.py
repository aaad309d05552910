"""People from the identity provider, on PostgreSQL and SQLite: provisioning and group sync."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db.base import utcnow
from tailor.db.models import GroupMapping, Identity, Membership, Role, SignInRequest, User
from tailor.errors import Forbidden
from tailor.security import hash_token
from tailor.services.identity.people import provision, sync_memberships
from tailor.services.identity.signin import SignInRefused, take_sign_in_request
from tests.conftest import create_team, create_user

ISSUER = "https://idp.example.com"


def _claims(sub: str, email: str, **more: Any) -> dict[str, Any]:
    return {"sub": sub, "email": email, "email_verified": True, **more}


def _roles(session: Session, user: User) -> dict[int, Role]:
    rows = session.scalars(select(Membership).where(Membership.user_id == user.id))
    return {m.team_id: m.role for m in rows}


def test_the_first_sign_in_makes_a_user_and_the_next_finds_it(session: Session) -> None:
    first = provision(session, ISSUER, _claims("s-1", "New.Person@Example.com"), ["a"])
    again = provision(session, ISSUER, _claims("s-1", "renamed@example.com"), ["b"])
    assert first.id == again.id and first.email == "new.person@example.com"
    identity = session.scalars(select(Identity).where(Identity.user_id == first.id)).one()
    assert identity.groups == ["b"]


def test_a_person_invited_by_address_is_linked_at_the_first_sign_in(session: Session) -> None:
    invited = create_user(session, "invited@example.com")
    assert provision(session, ISSUER, _claims("s-2", "invited@example.com"), []).id == invited.id


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "s-3"}, "no e-mail address"),
        ({"sub": "s-3", "email": "x@example.com", "email_verified": False}, "not verified"),
        ({"sub": "s-3", "email": "ci-1@team.machine.tailor.invalid"}, "machine"),
    ],
)
def test_an_unusable_address_is_refused_and_makes_no_user(
    session: Session, claims: dict[str, Any], reason: str
) -> None:
    before = session.scalars(select(User.id)).all()
    with pytest.raises(Forbidden, match=reason):
        provision(session, ISSUER, claims, [])
    assert session.scalars(select(User.id)).all() == before


def test_an_address_already_linked_to_another_account_is_refused(session: Session) -> None:
    provision(session, ISSUER, _claims("s-4", "taken@example.com"), [])
    with pytest.raises(Forbidden, match="another account"):
        provision(session, ISSUER, _claims("s-5", "taken@example.com"), [])


def test_the_strongest_mapped_role_wins_and_unmapped_groups_give_nothing(session: Session) -> None:
    team = create_team(session, create_user(session))
    session.add_all(
        [
            GroupMapping(group_name="readers", team_id=team.id, role=Role.viewer),
            GroupMapping(group_name="admins", team_id=team.id, role=Role.admin),
        ]
    )
    person = create_user(session)
    sync_memberships(session, person, ["readers", "admins", "unmapped"])
    assert _roles(session, person) == {team.id: Role.admin}
    sync_memberships(session, person, ["readers"])
    assert _roles(session, person) == {team.id: Role.viewer}
    sync_memberships(session, person, [])
    assert _roles(session, person) == {}


def test_a_sign_in_request_works_once_and_only_in_its_browser(session: Session) -> None:
    def pending(state: str, browser: str) -> None:
        session.add(
            SignInRequest(
                state_hash=hash_token(state),
                browser_hash=hash_token(browser),
                nonce="n",
                code_verifier="v",
                next_path="/console/teams",
                expires_at=utcnow() + timedelta(minutes=5),
            )
        )
        session.flush()

    pending("state-1", "browser-1")
    assert take_sign_in_request(session, "state-1", "browser-1").next_path == "/console/teams"
    with pytest.raises(SignInRefused, match="already used"):
        take_sign_in_request(session, "state-1", "browser-1")
    pending("state-2", "browser-2")
    with pytest.raises(SignInRefused, match="another browser"):
        take_sign_in_request(session, "state-2", "browser-1")
