"""The IDE usage page: acceptance rate over time per adapter version, the latency histogram and
the per-member split, in chromium; another team's page is 404 and its own is empty."""

from __future__ import annotations

from datetime import timedelta

import httpx
from playwright.sync_api import Page, expect
from sqlalchemy import select

from tailor.db.base import utcnow
from tailor.db.models import AdapterVersion, User
from tests.conftest import create_version
from tests.console.conftest import Console, Person, make_person, sign_in, snap
from tests.telemetry.factories import record


def seed_usage(console: Console, person: Person) -> None:
    """Yesterday 1 of 2 kept, today 3 of 4 (version 1); 2 by the owner unreported today."""
    with console.sessions() as session:
        assert person.team is not None
        team = person.team
        create_version(session, team, "completion", 1)
        version = session.scalar(select(AdapterVersion.id).where(AdapterVersion.team_id == team.id))
        owner = session.get_one(User, person.user.id)
        yesterday = utcnow() - timedelta(days=1)
        plan = [
            (yesterday, ("view", "select"), 30.0),
            (yesterday, ("view", "dismiss"), 60.0),
            *[(utcnow(), ("select",), 120.0)] * 3,
            (utcnow(), ("dismiss",), 900.0),
            *[(utcnow(), (), 20.0)] * 2,
        ]
        for at, kinds, latency in plan:
            record(session, team, owner, kinds=kinds, latency_ms=latency, at=at, version_id=version)
        session.commit()


def test_the_usage_page_plots_acceptance_per_version_and_latency(
    console: Console, page: Page
) -> None:
    owner = make_person(console)
    seed_usage(console, owner)
    sign_in(page, owner.token)
    page.goto(f"/console/teams/{owner.slug}")
    page.get_by_role("link", name="IDE usage").click()
    expect(page.get_by_role("heading", name="IDE usage", level=1)).to_be_visible()
    line = page.locator("svg[data-plot='Acceptance rate'] polyline[data-series='completion:v1']")
    expect(line).to_have_count(1)
    assert len((line.get_attribute("points") or "").split()) == 2  # yesterday and today
    bins = page.locator("svg[data-plot='Latency'] rect.bin")
    counts = [int(b.get_attribute("data-count") or 0) for b in bins.all()]
    # ≤25 ms: 20, 20; ≤50: 30; ≤100: 60; ≤200: 120 three times; ≤1600: 900
    assert counts == [2, 1, 1, 3, 0, 0, 1, 0, 0]
    expect(page.locator("#acceptance-total")).to_have_text("67%")  # 4 kept of 6 reported
    snap(console, page, "60-ide-usage")


def test_another_team_sees_none_of_it(console: Console) -> None:
    owner, other = make_person(console), make_person(console)
    seed_usage(console, owner)
    with httpx.Client(base_url=console.url) as client:
        headers = {"Authorization": f"Bearer {other.token}"}
        theirs = client.get(f"/v1/teams/{owner.slug}/telemetry", headers=headers)
        own = client.get(f"/v1/teams/{other.slug}/telemetry", headers=headers)
    assert theirs.status_code == 404
    assert own.json()["total"]["completions"] == 0
