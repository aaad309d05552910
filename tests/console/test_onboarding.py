"""A team lead onboards through the console: sign in, create a team, register a repository."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.console.conftest import Console, make_person, sign_in, snap, unique

CREDENTIAL = "ghp_console-test-credential-0123456789abcdef"


def test_sign_in_create_team_register_repository_and_every_page_renders(
    console: Console, page: Page
) -> None:
    lead = make_person(console, with_team=False)
    # Script errors and Content-Security-Policy violations show up as console errors.
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    sign_in(page, lead.token)
    expect(page.get_by_role("status")).to_have_text("Signed in.")
    expect(page.get_by_text("You are not in any team yet")).to_be_visible()
    snap(console, page, "01-teams-empty")

    slug = unique("payments")
    page.get_by_label("Slug").fill(slug)
    page.get_by_label("Display name").fill("Payments")
    page.get_by_role("button", name="Create team").click()
    page.wait_for_url(f"**/console/teams/{slug}?done=team-created")
    expect(page.get_by_role("heading", level=1)).to_have_text("Payments")
    snap(console, page, "02-team-home")

    page.get_by_role("link", name="Repositories", exact=True).click()
    page.get_by_label("Name", exact=True).fill("billing")
    page.get_by_label("Git URL").fill("http://git.example.internal/payments/billing.git")
    page.get_by_label("Credential kind").select_option("token")
    page.get_by_label("Credential (write-only)").fill(CREDENTIAL)
    page.get_by_role("button", name="Register repository").click()
    expect(page.get_by_role("status")).to_contain_text("Repository registered")
    row = page.get_by_role("row", name=re.compile("billing"))
    expect(row).to_contain_text("token (stored, write-only)")
    snap(console, page, "03-repositories")

    for link, name in [
        ("Datasets", "04-datasets"),
        ("Fine-tunes", "05-finetunes"),
        ("Evaluations", "06-evaluations"),
        ("Adapters & endpoints", "07-adapters"),
        ("Members", "08-members"),
        ("Tokens", "09-tokens"),
        ("Home", "10-team-home-with-repository"),
    ]:
        page.get_by_role("link", name=link, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        assert page.url.startswith(f"{console.url}/console/teams/{slug}")
        snap(console, page, name)
    expect(page.get_by_text("billing")).to_be_visible()

    html = "\n".join(console.pages_seen.values())
    assert CREDENTIAL not in html
    assert lead.token not in html
    assert problems == []


def test_a_wrong_token_is_refused_next_to_the_field(console: Console, page: Page) -> None:
    page.goto("/console/sign-in")
    page.get_by_label("API token").fill("tlr_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    error = page.locator("#token-error")
    expect(error).to_contain_text("was not accepted")
    expect(page.get_by_label("API token")).to_have_attribute("aria-invalid", "true")
    # The rejected value is not echoed back into the page.
    assert "tlr_not-a-real-token" not in page.content()
    snap(console, page, "00-sign-in-error")


def test_pages_need_a_session_and_come_back_after_sign_in(console: Console, page: Page) -> None:
    owner = make_person(console)
    page.goto(f"/console/teams/{owner.slug}/members")
    assert "/console/sign-in" in page.url
    page.get_by_label("API token").fill(owner.token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/console/teams/{owner.slug}/members?done=signed-in")
    expect(page.get_by_role("heading", level=1)).to_have_text("Members")


def test_invalid_repository_shows_messages_next_to_fields_and_forgets_the_credential(
    console: Console, page: Page
) -> None:
    owner = make_person(console)
    sign_in(page, owner.token)
    page.goto(f"/console/teams/{owner.slug}/repositories")
    page.get_by_label("Name", exact=True).fill("bad name!")
    page.get_by_label("Git URL").fill("ftp://example.com/repo.git")
    page.get_by_label("Credential kind").select_option("token")
    page.get_by_label("Credential (write-only)").fill(CREDENTIAL)
    page.get_by_role("button", name="Register repository").click()

    expect(page.locator("#name-error")).to_contain_text("Not in the expected form")
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#form-errors")).to_be_focused()
    expect(page.get_by_label("Credential (write-only)")).to_have_value("")
    snap(console, page, "11-repository-validation")
    assert CREDENTIAL not in page.content()

    page.get_by_label("Name", exact=True).fill("billing")
    page.get_by_label("Credential (write-only)").fill(CREDENTIAL)
    page.get_by_role("button", name="Register repository").click()
    expect(page.locator("#url-error")).to_contain_text("ftp://")
    assert CREDENTIAL not in page.content()
    expect(page.get_by_text("No repository registered yet.")).to_be_visible()
