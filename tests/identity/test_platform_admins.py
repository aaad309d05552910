"""Platform admins by their identity-provider groups (TAILOR_OIDC_ADMIN_GROUPS)."""

from __future__ import annotations

import httpx
from sqlalchemy.orm import Session

from tailor.db.models import Identity
from tailor.services.tokens.admins import GroupAdmins
from tests.conftest import create_user
from tests.identity.conftest import ADMIN_GROUP, SsoApp, headless_sign_in

ISSUER = "https://idp.example.com"


def test_a_person_in_the_admin_group_signs_in_as_a_platform_admin(sso: SsoApp) -> None:
    sso.idp.person("pia", "pia@example.com", ["engineering", ADMIN_GROUP])

    with httpx.Client() as browser:
        assert headless_sign_in(sso, browser, "pia").status_code == 303
        admin_page = browser.get(sso.url + "/console/admin")

    assert admin_page.status_code == 200


def test_taken_out_of_the_admin_group_a_person_is_no_admin_in_any_session(sso: SsoApp) -> None:
    sso.idp.person("ole", "ole@example.com", [ADMIN_GROUP])
    with httpx.Client() as earlier, httpx.Client() as later:
        assert headless_sign_in(sso, earlier, "ole").status_code == 303
        assert earlier.get(sso.url + "/console/admin").status_code == 200
        sso.idp.person("ole", "ole@example.com", ["engineering"])

        assert headless_sign_in(sso, later, "ole").status_code == 303
        assert later.get(sso.url + "/console/admin").status_code == 404
        assert earlier.get(sso.url + "/console/admin").status_code == 404  # opened as admin


def test_a_person_in_no_admin_group_reaches_no_admin_page(sso: SsoApp) -> None:
    sso.idp.person("nat", "nat@example.com", ["engineering"])

    with httpx.Client() as browser:
        assert headless_sign_in(sso, browser, "nat").status_code == 303
        assert browser.get(sso.url + "/console/teams").status_code == 200

        assert browser.get(sso.url + "/console/admin").status_code == 404


def test_only_the_configured_providers_groups_count(session: Session) -> None:
    user = create_user(session)
    session.add(Identity(user_id=user.id, issuer="https://other.example.com", subject="s",
                         groups=[ADMIN_GROUP]))  # fmt: skip
    session.flush()

    assert not GroupAdmins(ISSUER, frozenset({ADMIN_GROUP})).include(session, user.id)
    assert GroupAdmins("https://other.example.com", frozenset({ADMIN_GROUP})).include(
        session, user.id
    )
