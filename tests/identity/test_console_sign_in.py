"""Signing in to the console through the identity provider: teams from groups, key rotation."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import select

from tailor.db.models import Role, Team, User
from tests.conftest import add_member
from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.identity.conftest import SsoApp, headless_sign_in, make_team, map_group, roles_of


def _slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, driven by Playwright."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, sso: SsoApp) -> Iterator[Page]:
    """A tab in a fresh profile (no cookies at the console nor at the provider)."""
    ctx = browser.new_context(base_url=sso.url)
    ctx.set_default_timeout(15_000)
    yield ctx.new_page()
    ctx.close()


def test_browser_sign_in_lands_in_the_console_with_the_teams_and_roles_of_ones_groups(
    sso: SsoApp, page: Page
) -> None:
    eng, leads, other = (
        make_team(sso, _slug("eng")),
        make_team(sso, _slug("lead")),
        make_team(sso, _slug("x")),
    )
    map_group(sso, "g-eng", eng, Role.member)
    map_group(sso, "g-leads", leads, Role.admin)
    map_group(sso, "g-other", other, Role.member)
    sso.idp.person("ada", "ada@example.com", ["g-eng", "g-leads", "unmapped"])

    page.goto("/console/sign-in")
    page.get_by_role("link", name="Sign in with Example SSO").click()
    page.get_by_placeholder("Enter any login").fill("ada")
    page.get_by_placeholder("and password").fill("secret")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # the provider's consent
    page.wait_for_url(re.compile(r".*/console/teams\?done=signed-in$"))

    expect(page.get_by_role("link", name=eng.slug)).to_be_visible()
    expect(page.get_by_role("link", name=leads.slug)).to_be_visible()
    expect(page.get_by_role("link", name=other.slug)).to_have_count(0)
    assert roles_of(sso, "ada@example.com") == {eng.slug: Role.member, leads.slug: Role.admin}
    # Signing out ends the session: the console asks to sign in again.
    page.get_by_role("button", name="Sign out").click()
    page.goto("/console/teams")
    expect(page).to_have_url(re.compile(r".*/console/sign-in.*"))


def test_a_person_removed_from_a_group_loses_the_team_at_the_next_sign_in(sso: SsoApp) -> None:
    eng, leads = make_team(sso, _slug("eng")), make_team(sso, _slug("lead"))
    map_group(sso, "rm-eng", eng, Role.member)
    map_group(sso, "rm-leads", leads, Role.admin)
    sso.idp.person("bea", "bea@example.com", ["rm-eng", "rm-leads"])
    with httpx.Client() as http:
        assert headless_sign_in(sso, http, "bea").status_code == 303
    assert roles_of(sso, "bea@example.com") == {eng.slug: Role.member, leads.slug: Role.admin}

    sso.idp.person("bea", "bea@example.com", ["rm-eng"])
    with httpx.Client() as http:
        assert headless_sign_in(sso, http, "bea").status_code == 303
    assert roles_of(sso, "bea@example.com") == {eng.slug: Role.member}


def test_key_rotation_at_the_provider_keeps_sign_in_working(sso: SsoApp) -> None:
    sso.idp.person("cy", "cy@example.com", [])
    with httpx.Client() as http:
        assert headless_sign_in(sso, http, "cy").status_code == 303
    old_kid = sso.idp.keys[0]["kid"]
    sso.idp.rotate_keys()
    assert sso.idp.keys[0]["kid"] != old_kid
    with httpx.Client() as http:
        answer = headless_sign_in(sso, http, "cy")
        assert answer.status_code == 303, answer.text
        assert http.get(sso.url + "/console/teams").status_code == 200


def test_memberships_added_by_hand_stay_whatever_the_groups_say(sso: SsoApp) -> None:
    mapped, unmapped = make_team(sso, _slug("map")), make_team(sso, _slug("hand"))
    map_group(sso, "hand-eng", mapped, Role.viewer)
    sso.idp.person("dan", "dan@example.com", [])
    with httpx.Client() as http:
        assert headless_sign_in(sso, http, "dan").status_code == 303
    with sso.sessions() as session:
        dan = session.scalars(select(User).where(User.email == "dan@example.com")).one()
        add_member(session, session.get_one(Team, mapped.id), dan, Role.admin)
        add_member(session, session.get_one(Team, unmapped.id), dan, Role.member)
        session.commit()

    with httpx.Client() as http:
        assert headless_sign_in(sso, http, "dan").status_code == 303
    assert roles_of(sso, "dan@example.com") == {mapped.slug: Role.admin, unmapped.slug: Role.member}
