"""The cost pages in chromium: a team's spend per day by job kind (the plot), its budget
warning, a job's cost beside its estimate, and the platform admin's spend by team."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import Page, expect

from tailor.db.base import utcnow
from tailor.db.models import GpuPrice, Job, JobState, Team, TeamBudget
from tailor.demo.tiny import tiny_base_cached
from tests.conftest import SERVED_BASE, create_ready_dataset, register_base
from tests.console.conftest import Console, Person, make_person, sign_in, snap
from tests.train.conftest import CACHE_ROOT

A100 = "nvidia-a100-80gb"


def seed_spend(console: Console, person: Person) -> str:
    """A100s at 2.00 USD an hour; today a 3-hour fine-tune and a 1-hour evaluation; a soft
    limit of 5.00 USD. Returns the fine-tune's id."""
    assert person.team is not None
    now = utcnow()
    with console.sessions() as session:
        session.add(GpuPrice(gpu_type=A100, price_per_gpu_hour=2.0,
                             effective_from=now - timedelta(days=60)))  # fmt: skip
        session.add(TeamBudget(team_id=person.team.id, soft_limit=5.0, hard_limit=50.0))
        uid = f"fi-{person.team.id:012d}"
        for job_uid, kind, hours in [(uid, "finetune", 3.0), (uid + "e", "evaluation", 1.0)]:
            session.add(Job(uid=job_uid, team_id=person.team.id, kind=kind, spec={},
                            state=JobState.succeeded, started_at=now, finished_at=now,
                            usage={"gpu_type": A100, "gpus": 1, "gpu_seconds": hours * 3600,
                                   "cpu_seconds": 60.0, "wall_seconds": hours * 3600},
                            estimate={"gpu_type": A100, "gpu_hours": 2.5, "price": 5.0,
                                      "basis": "flops-model", "currency": "USD"}))  # fmt: skip
        session.commit()
    return uid


def test_the_costs_page_plots_spend_per_day_by_kind_and_warns_past_the_soft_limit(
    console: Console, page: Page
) -> None:
    owner = make_person(console)
    uid = seed_spend(console, owner)
    sign_in(page, owner.token)
    page.goto(f"/console/teams/{owner.slug}")
    page.get_by_role("link", name="Costs").click()

    expect(page.get_by_role("heading", name="Costs", level=1)).to_be_visible()
    expect(page.locator("#spend-total")).to_have_text("8.00 USD")
    plot = page.locator("svg[data-plot='Spend per day']")
    for kind in ("finetune", "evaluation"):
        expect(plot.locator(f"polyline[data-series='{kind}']")).to_have_count(1)
    points = plot.locator("polyline[data-series='finetune']").get_attribute("points") or ""
    assert len(points.split()) == utcnow().day  # every day of the month so far
    expect(page.locator("#budget-warning")).to_contain_text("past its budget's soft limit")
    snap(console, page, "70-costs")

    page.goto(f"/console/teams/{owner.slug}/jobs/{uid}")
    expect(page.locator("#job-cost")).to_contain_text("6.00 USD")  # 3 GPU-hours x 2.00
    expect(page.get_by_role("row", name="Estimate (flops-model)")).to_contain_text("5.00 USD")


def test_the_platform_page_plots_each_teams_spend_for_admins_only(
    console: Console, page: Page
) -> None:
    owner = make_person(console)
    seed_spend(console, owner)
    admin = make_person(console, with_team=False, admin=True, scopes=("read", "write", "admin"))
    sign_in(page, admin.token)
    page.get_by_role("link", name="Platform costs").click()

    plot = page.locator("svg[data-plot='Spend per day by team']")
    expect(plot.locator(f"polyline[data-series='{owner.slug}']")).to_have_count(1)
    expect(page.get_by_role("table", name="Prices")).to_contain_text(A100)
    snap(console, page, "71-platform-costs")
    sign_in(page, owner.token)
    answer = page.goto("/console/admin/costs")
    assert answer is not None and answer.status == 404


def test_a_finetune_started_past_the_soft_limit_says_so(console: Console, page: Page) -> None:
    owner = make_person(console)
    seed_spend(console, owner)  # 8.00 USD spent, soft limit 5.00
    with console.sessions() as session:
        register_base(session, SERVED_BASE, tiny_base_cached(CACHE_ROOT))
        create_ready_dataset(session, session.get_one(Team, owner.team.id))  # type: ignore[union-attr]
    sign_in(page, owner.token)
    page.goto(f"/console/teams/{owner.slug}/finetunes")
    page.get_by_label("Adapter name").fill("house-style")
    page.get_by_role("button", name="Start fine-tune").click()

    expect(page.get_by_role("status")).to_have_text(
        "Fine-tune started. The team is past its monthly budget's soft limit: see Costs."
    )
    expect(page.locator(".log .level-warning")).to_contain_text("past its budget's soft limit")
