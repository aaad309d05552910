"""Cost pages: a team's spend this month (per day and job kind) against its budget, and the
platform's (per day and team) for platform admins, with the GPU prices in effect."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from fastapi import APIRouter, Request, Response

from api.console.plots import Plot, spend_plot
from api.console.web import PREFIX, ConsoleRoute, PlatformAdmin, Viewer, render, team_router
from api.deps import SessionDep, SettingsDep
from tailor.db.base import utcnow
from tailor.services.costs import service as costs
from tailor.services.costs.schemas import DayCost

router = team_router()
platform = APIRouter(prefix=PREFIX + "/admin", route_class=ConsoleRoute, include_in_schema=False)


def _by_day(rows: Sequence[DayCost]) -> dict[date, float]:
    return {r.day: r.cost for r in rows}


def _period(month: str) -> tuple[date, date]:
    """The month's first day through today (or its last day, for a past month)."""
    first = date.fromisoformat(f"{month}-01")
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, min(utcnow().date(), following - timedelta(days=1))


@router.get("/costs")
def team_costs(
    request: Request, access: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    """The team's spend this month by day and job kind, and its budget."""
    spend = costs.team_spend(session, access, settings)
    since, until = _period(spend.month)
    per_kind = costs.team_spend_by_kind_day(session, access)
    plot: Plot = spend_plot(per_kind, since, until, "Spend per day", spend.currency)
    return render(request, "costs.html", access=access, spend=spend, plot=plot)


@platform.get("/costs")
def platform_costs(
    request: Request, principal: PlatformAdmin, session: SessionDep, settings: SettingsDep
) -> Response:
    """Every team's spend this month by day, and the GPU prices."""
    spend = costs.platform_spend(session, principal, settings)
    since, until = _period(spend.month)
    per_team = {t.team: _by_day(t.by_day) for t in spend.by_team}
    plot = spend_plot(per_team, since, until, "Spend per day by team", spend.currency)
    prices = costs.list_prices(session, settings)
    return render(request, "platform_costs.html", spend=spend, plot=plot, prices=prices)
