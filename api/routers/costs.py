"""Costs: GPU prices (/v1/admin/gpu-prices), spend per team and platform-wide, team budgets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import CurrentPrincipal, SessionDep, SettingsDep, TeamViewer
from api.responses import READ, WRITE
from tailor.services.costs import service as costs
from tailor.services.costs.schemas import (
    BudgetIn,
    BudgetOut,
    PlatformSpendOut,
    PriceIn,
    PriceOut,
    TeamSpendOut,
)

router = APIRouter(tags=["costs"])

Month = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{4}-[0-9]{2}$", description="YYYY-MM (UTC); default this month."),
]
GpuType = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$", description="GPU type.")]


@router.get("/v1/admin/gpu-prices", response_model=list[PriceOut], responses=READ)
def list_prices(
    session: SessionDep, settings: SettingsDep, _principal: CurrentPrincipal
) -> list[PriceOut]:
    """The price per GPU-hour in effect now of every GPU type that has one."""
    return costs.list_prices(session, settings)


@router.put("/v1/admin/gpu-prices/{gpu_type}", response_model=PriceOut, responses=WRITE)
def set_price(
    gpu_type: GpuType,
    body: PriceIn,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> PriceOut:
    """A new price per GPU-hour for the type, from now on (platform admins); jobs that ended
    before keep the price of their time."""
    return costs.set_price(session, principal, gpu_type, body.price_per_gpu_hour, settings)


@router.get("/v1/admin/spend", response_model=PlatformSpendOut, responses=READ)
def platform_spend(
    session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal, month: Month = None
) -> PlatformSpendOut:
    """Every team's spend in a month, by day, team and job kind (platform admins)."""
    return costs.platform_spend(session, principal, settings, month)


@router.get("/v1/teams/{team}/spend", response_model=TeamSpendOut, responses=READ)
def team_spend(
    access: TeamViewer, session: SessionDep, settings: SettingsDep, month: Month = None
) -> TeamSpendOut:
    """The team's spend in a month by day and job kind, and its budget."""
    return costs.team_spend(session, access, settings, month)


@router.get("/v1/teams/{team}/budget", response_model=BudgetOut, responses=READ)
def get_budget(access: TeamViewer, session: SessionDep, settings: SettingsDep) -> BudgetOut:
    """The team's monthly budget and this month's spend against it."""
    return costs.budget_of(session, access.team, settings)


@router.put("/v1/teams/{team}/budget", response_model=BudgetOut, responses=WRITE)
def set_budget(
    body: BudgetIn, access: TeamViewer, session: SessionDep, settings: SettingsDep
) -> BudgetOut:
    """Set the team's monthly soft and hard limits (platform admins)."""
    return costs.set_budget(session, access, body, settings)
