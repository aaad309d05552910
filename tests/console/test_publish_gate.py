"""The team's publish gate in the console: shown to everyone, set by an admin."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import select

from tailor.db.models import AuditEvent, Team
from tests.console.conftest import Console, make_person, sign_in, snap


def test_an_admin_sees_the_default_gate_and_tightens_it(console: Console, page: Page) -> None:
    owner = make_person(console)
    sign_in(page, owner.token)
    page.goto(f"/console/teams/{owner.slug}/adapters")
    checks = page.get_by_role("list", name="Publish gate checks")
    expect(checks).to_contain_text("lower end of the delta's 95% CI at least -2.0 points")

    field = page.get_by_label("Edit similarity: CI lower end at least (points)")
    expect(field).to_have_value("-2.0")
    field.fill("1.5")
    page.get_by_label("Refuse an evaluation without HumanEval").check()
    page.get_by_role("button", name="Save publish gate").click()
    expect(page.get_by_role("status")).to_have_text("Publish gate saved.")
    expect(checks).to_contain_text("at least +1.5 points")
    expect(checks).not_to_contain_text("(when run)")
    snap(console, page, "36-publish-gate")
    with console.sessions() as session:
        team = session.scalars(select(Team).where(Team.slug == owner.slug)).one()
        assert team.publish_policy["min_edit_similarity_ci_low_points"] == 1.5
        assert team.publish_policy["require_humaneval"] is True
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.team_id == team.id)
        ).all()
    assert "team.publish_policy" in actions


def test_a_bad_threshold_is_refused_next_to_its_field_and_changes_nothing(
    console: Console, page: Page
) -> None:
    owner = make_person(console)
    sign_in(page, owner.token)
    page.goto(f"/console/teams/{owner.slug}/adapters")
    page.get_by_label("HumanEval pass@1 may drop by (points)").fill("-3")
    page.get_by_role("button", name="Save publish gate").click()
    expect(page.locator("#max_humaneval_pass1_drop_points-error")).to_be_visible()
    with console.sessions() as session:
        team = session.scalars(select(Team).where(Team.slug == owner.slug)).one()
        assert team.publish_policy == {}
