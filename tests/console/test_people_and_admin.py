"""Members and tokens management, and the platform admin's view of the fleet."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select

from tailor.db.models import ApiToken, Role, Team
from tailor.jobs import service as jobs
from tailor.tenancy import Principal, TeamAccess
from tests.console.conftest import Console, join, make_person, sign_in, snap


def test_members_are_added_given_a_role_and_removed(console: Console, page: Page) -> None:
    owner = make_person(console)
    sign_in(page, owner.token)
    page.goto(f"/console/teams/{owner.slug}/members")

    page.get_by_label("E-mail").fill("not-an-email")
    page.get_by_role("button", name="Add member").click()
    expect(page.locator("#email-error")).to_be_visible()

    page.get_by_label("E-mail").fill("dev@example.com")
    page.get_by_label("Name", exact=True).fill("Dev")
    page.get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status")).to_have_text("Member added.")
    page.get_by_label("Role of dev@example.com").select_option("member")
    page.get_by_role("row", name=re.compile("dev@example.com")).get_by_role(
        "button", name="Change role"
    ).click()
    expect(page.get_by_role("status")).to_have_text("Role changed.")
    expect(page.get_by_label("Role of dev@example.com")).to_have_value("member")
    snap(console, page, "40-members")

    # The last owner cannot be demoted: the reason shows next to that row's role.
    page.get_by_label(f"Role of {owner.user.email}").select_option("viewer")
    page.get_by_role("row", name=re.compile(re.escape(owner.user.email))).get_by_role(
        "button", name="Change role"
    ).click()
    expect(page.locator(f"#role-{owner.user.id}-error")).to_contain_text("at least one owner")

    page.get_by_role("button", name="Remove dev@example.com").click()
    expect(page.get_by_role("status")).to_have_text("Member removed.")
    expect(page.get_by_text("dev@example.com")).to_have_count(0)


def test_a_token_is_shown_once_then_only_its_prefix_and_it_can_be_revoked(
    console: Console, page: Page
) -> None:
    owner = make_person(console)
    sign_in(page, owner.token)
    page.goto(f"/console/teams/{owner.slug}/tokens")
    page.get_by_label("Name", exact=True).fill("vscode")
    page.get_by_label("inference").check()
    page.get_by_role("button", name="Create token").click()

    secret = page.locator("#new-token").inner_text()
    assert secret.startswith("tlr_")
    page.get_by_role("button", name="Copy token").click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    snap(console, page, "41-token-created-once")
    del console.pages_seen["41-token-created-once"]  # the one page meant to show it

    page.goto(f"/console/teams/{owner.slug}/tokens")
    row = page.get_by_role("row", name=re.compile("vscode"))
    expect(row).to_contain_text(secret[:12])
    expect(row).to_contain_text("inference, read, write")
    assert secret not in page.content()
    snap(console, page, "42-tokens")

    page.get_by_role("button", name=re.compile("Revoke token vscode")).click()
    expect(page.get_by_role("status")).to_have_text("Token revoked.")
    expect(page.get_by_role("row", name=re.compile("vscode"))).to_contain_text("revoked")
    with console.sessions() as session:
        row_db = session.scalars(select(ApiToken).where(ApiToken.name == "vscode")).one()
        assert row_db.revoked_at is not None


def test_an_admin_issues_a_machine_token_no_stronger_than_themself(
    console: Console, page: Page
) -> None:
    owner = make_person(console)
    admin = make_person(console, with_team=False)
    assert owner.team is not None
    join(console, admin, owner.team, Role.admin)
    sign_in(page, admin.token)
    page.goto(f"/console/teams/{owner.slug}/tokens")
    choices = page.get_by_label("Acts as").locator("option").all_inner_texts()
    assert any("admin role" in c for c in choices)
    assert not any("owner" in c for c in choices)

    page.get_by_label("Name", exact=True).fill("ci")
    page.get_by_label("Acts as").select_option("admin")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#new-token")).to_be_visible()

    page.goto(f"/console/teams/{owner.slug}/members")
    expect(page.get_by_role("row", name=re.compile("machine token"))).to_have_count(1)
    expect(page.get_by_label(re.compile(r"Role of ci-"))).to_have_value("admin")


def test_a_token_needs_a_scope_and_says_so_next_to_the_scopes(console: Console, page: Page) -> None:
    owner = make_person(console)
    sign_in(page, owner.token)
    page.goto(f"/console/teams/{owner.slug}/tokens")
    page.get_by_label("Name", exact=True).fill("nothing")
    page.get_by_label("read").uncheck()
    page.get_by_label("write").uncheck()
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#scopes-error")).to_be_visible()
    expect(page.locator("#new-token")).to_have_count(0)


def test_the_admin_sees_every_team_the_queue_failures_and_the_audit_log(
    console: Console, page: Page
) -> None:
    admin = make_person(console, with_team=False, admin=True, scopes=("read", "write", "admin"))
    team_a, team_b = make_person(console), make_person(console)
    assert team_a.team is not None and team_b.team is not None
    with console.sessions() as session:
        team = session.get_one(Team, team_b.team.id)
        access = TeamAccess(team, Role.owner, Principal(team_b.user.id, team_b.user.email))
        running = jobs.create_job(session, access, "finetune", {"num_processes": 1})
        jobs.begin_attempt(session, running)
        broken = jobs.create_job(session, access, "harvest", {})
        jobs.fail(session, broken, "repository billing: authentication failed: rotate its token")
        session.commit()
        running_uid = running.uid

    sign_in(page, admin.token)
    page.get_by_role("link", name="Admin").click()
    for slug in (team_a.slug, team_b.slug):
        expect(page.get_by_role("link", name=slug, exact=True).first).to_be_visible()
    queue = page.get_by_role("table", name="Jobs not finished yet")
    expect(queue.get_by_role("row", name=re.compile(running_uid))).to_contain_text("running")
    expect(page.get_by_text("authentication failed: rotate its token")).to_be_visible()
    expect(page.locator("#h-audit").locator("..")).to_contain_text("finetune.start")

    page.get_by_label(f"GPU quota of {team_b.slug}").fill("-3")
    page.get_by_label(f"GPU quota of {team_b.slug}").press("Enter")
    expect(page.locator(f"#quota-{team_b.slug}-error")).to_be_visible()
    page.get_by_label(f"GPU quota of {team_b.slug}").fill("8")
    page.get_by_label(f"GPU quota of {team_b.slug}").press("Enter")
    expect(page.get_by_role("status")).to_have_text("Quota saved.")
    expect(page.get_by_label(f"GPU quota of {team_b.slug}")).to_have_value("8")
    snap(console, page, "50-admin")
