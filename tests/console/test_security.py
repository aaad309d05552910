"""CSRF refusal, tenant isolation by URL, the admin view's gate, and cookie hygiene."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import func, select

from tailor.db.models import Repository, Role, Team
from tailor.jobs import service as jobs
from tailor.tenancy import Principal, TeamAccess
from tests.console.conftest import (
    Console,
    csrf_of,
    join,
    make_person,
    sign_in,
    signed_in_client,
    snap,
)


def _team_pages(slug: str, job: str) -> list[str]:
    base = f"/console/teams/{slug}"
    return [
        base,
        f"{base}/repositories",
        f"{base}/datasets",
        f"{base}/finetunes",
        f"{base}/evaluations",
        f"{base}/adapters",
        f"{base}/members",
        f"{base}/tokens",
        f"{base}/jobs/{job}",
        f"{base}/jobs/{job}/live",
    ]


def _queued_job(console: Console, team: Team, user_id: int) -> str:
    with console.sessions() as session:
        team = session.get_one(Team, team.id)
        access = TeamAccess(team, Role.owner, Principal(user_id=user_id, email="x@example.com"))
        job = jobs.create_job(session, access, "finetune", {"adapter_name": "secret-project"})
        session.commit()
        return job.uid


def test_a_member_of_team_a_gets_404_for_every_page_of_team_b(console: Console, page: Page) -> None:
    alice, bob = make_person(console), make_person(console)
    assert alice.team is not None and bob.team is not None
    b_job = _queued_job(console, bob.team, bob.user.id)
    sign_in(page, alice.token)

    for url in _team_pages(bob.slug, b_job):
        response = page.goto(url)
        assert response is not None and response.status == 404, url
        assert bob.slug not in " ".join(page.locator("nav").all_inner_texts())
        assert "secret-project" not in page.content()
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    snap(console, page, "20-other-team-404")

    # Team B's job under team A's URL is just as unknown.
    response = page.goto(f"/console/teams/{alice.slug}/jobs/{b_job}")
    assert response is not None and response.status == 404
    # And the team list shows only the caller's own team.
    page.goto("/console/teams")
    expect(page.get_by_role("link", name=alice.slug)).to_be_visible()
    expect(page.get_by_role("link", name=bob.slug)).to_have_count(0)


def test_a_form_posted_without_the_csrf_token_is_refused_and_changes_nothing(
    console: Console, page: Page, context: BrowserContext
) -> None:
    owner = make_person(console)
    sign_in(page, owner.token)
    url = f"{console.url}/console/teams/{owner.slug}/repositories"
    form = {"name": "forged", "url": "https://example.com/x.git", "credential_kind": "none"}

    missing = context.request.post(url, form=form, max_redirects=0)
    wrong = context.request.post(url, form={**form, "csrf_token": "0" * 64}, max_redirects=0)

    assert missing.status == 403 and wrong.status == 403
    assert "Form expired" in missing.text()
    with console.sessions() as session:
        count = session.scalar(
            select(func.count()).select_from(Repository).where(Repository.name == "forged")
        )
    assert count == 0
    # The same form from the page itself (with its token) works.
    page.goto(url)
    page.get_by_label("Name", exact=True).fill("forged")
    page.get_by_label("Git URL").fill("https://example.com/x.git")
    page.get_by_role("button", name="Register repository").click()
    expect(page.get_by_role("status")).to_contain_text("Repository registered")


def test_a_csrf_token_from_another_session_is_refused(
    console: Console, page: Page, context: BrowserContext
) -> None:
    owner = make_person(console)
    sign_in(page, owner.token)
    page.goto(f"/console/teams/{owner.slug}/tokens")
    token_before_sign_out = page.locator("input[name=csrf_token]").first.get_attribute("value")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, make_person(console).token)
    response = context.request.post(
        f"{console.url}/console/teams/{owner.slug}/tokens",
        form={"name": "x", "scopes": "read", "csrf_token": token_before_sign_out or ""},
        max_redirects=0,
    )
    assert response.status == 403


def test_the_session_cookie_is_httponly_and_same_site_strict(
    console: Console, page: Page, context: BrowserContext
) -> None:
    owner = make_person(console)
    sign_in(page, owner.token)
    cookies = {c["name"]: c for c in context.cookies()}
    session_cookie = cookies["tailor_console"]
    assert session_cookie["httpOnly"] is True
    assert session_cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""
    for html in [page.content(), *console.pages_seen.values()]:
        assert owner.token not in html


def test_signing_out_ends_the_session(console: Console, page: Page) -> None:
    owner = make_person(console)
    sign_in(page, owner.token)
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"/console/teams/{owner.slug}")
    assert re.search(r"/console/sign-in\?next=", page.url)


def test_the_admin_view_does_not_exist_for_team_members(console: Console, page: Page) -> None:
    owner = make_person(console)
    other = make_person(console)
    assert other.team is not None
    join(console, owner, other.team, Role.viewer)
    sign_in(page, owner.token)
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    response = page.goto("/console/admin")
    assert response is not None and response.status == 404
    # A viewer sees the team but not its forms that change things.
    page.goto(f"/console/teams/{other.slug}/repositories")
    expect(page.get_by_role("button", name="Register repository")).to_have_count(0)


def test_sign_in_never_redirects_to_another_site(console: Console, page: Page) -> None:
    owner = make_person(console)
    page.goto("/console/sign-in?next=//evil.example.com/phish")
    page.get_by_label("API token").fill(owner.token)
    page.get_by_label("API token").press("Enter")
    page.wait_for_url(f"{console.url}/console/teams?done=signed-in")


def test_the_keyboard_reaches_the_skip_link_first_and_then_the_content(
    console: Console, page: Page
) -> None:
    owner = make_person(console)
    sign_in(page, owner.token)
    page.goto(f"/console/teams/{owner.slug}/tokens")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    # Past the skip link, the next stop is inside the page's content, not the navigation.
    focused_in_main = page.evaluate(
        "document.querySelector('main').contains(document.activeElement)"
    )
    assert focused_in_main


def test_the_cookie_holds_a_session_that_signing_out_ends_for_every_copy(
    console: Console, page: Page, context: BrowserContext
) -> None:
    owner = make_person(console)
    sign_in(page, owner.token)
    copied = {c["name"]: c["value"] for c in context.cookies()}["tailor_console"]
    assert owner.token not in copied  # the API token never reaches a cookie
    page.get_by_role("button", name="Sign out").click()

    with httpx.Client(base_url=console.url, follow_redirects=False) as replay:
        replay.cookies.set("tailor_console", copied)
        resp = replay.get(f"/console/teams/{owner.slug}")

    assert resp.status_code == 303 and resp.headers["location"].startswith("/console/sign-in")


def test_an_inference_token_cannot_sign_in(
    console: Console, page: Page, context: BrowserContext
) -> None:
    ide = make_person(console, scopes=("inference",))
    page.goto("/console/sign-in")
    page.get_by_label("API token").fill(ide.token)
    page.get_by_label("API token").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("works only at the inference gateway")
    assert "tailor_console" not in {c["name"] for c in context.cookies()}


def test_signing_in_again_ends_the_session_it_replaces(console: Console) -> None:
    first, second = make_person(console), make_person(console)
    with signed_in_client(console, first.token) as client:
        replaced = client.cookies["tailor_console"]
        form = client.get("/console/sign-in")
        client.post(
            "/console/sign-in",
            data={"csrf_token": csrf_of(form.text), "token": second.token, "next": ""},
        )
        assert client.cookies["tailor_console"] != replaced
    with httpx.Client(base_url=console.url, follow_redirects=False) as replay:
        replay.cookies.set("tailor_console", replaced)
        assert replay.get(f"/console/teams/{first.slug}").status_code == 303
