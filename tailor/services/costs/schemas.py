"""Request and response shapes of prices, budgets, spend and estimates."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

GpuTypeName = Field(pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$", description="GPU type (pool) name.")


class PriceIn(BaseModel):
    """A new price per GPU-hour for a GPU type, in effect from now on."""

    model_config = ConfigDict(extra="forbid")
    price_per_gpu_hour: float = Field(ge=0.0, le=1_000_000.0, allow_inf_nan=False)


class PriceOut(BaseModel):
    """A GPU type's price in effect now."""

    gpu_type: str
    price_per_gpu_hour: float
    currency: str
    effective_from: datetime


class BudgetIn(BaseModel):
    """A team's monthly budget; leave a limit out (null) for none."""

    model_config = ConfigDict(extra="forbid")
    soft_limit: float | None = Field(None, ge=0.0, allow_inf_nan=False, description="Warn past.")
    hard_limit: float | None = Field(
        None, ge=0.0, allow_inf_nan=False, description="No new training past."
    )

    @model_validator(mode="after")
    def _soft_below_hard(self) -> BudgetIn:
        if (
            self.soft_limit is not None
            and self.hard_limit is not None
            and self.soft_limit > self.hard_limit
        ):
            raise ValueError("soft_limit must not exceed hard_limit")
        return self


class BudgetOut(BaseModel):
    """A team's monthly budget and where this month's spend stands."""

    team: str
    currency: str
    soft_limit: float | None
    hard_limit: float | None
    spent: float
    state: str = Field(description="ok, warning (past the soft limit) or exhausted (hard).")
    warning: str | None = None


class DayCost(BaseModel):
    """One day's spend."""

    day: date
    cost: float


class KindCost(BaseModel):
    """Spend and GPU-hours of one job kind (or `endpoint`)."""

    kind: str
    cost: float
    gpu_hours: float


class TeamSpendOut(BaseModel):
    """A team's spend in one month."""

    team: str
    month: str
    currency: str
    total: float
    gpu_hours: float
    cpu_hours: float
    unpriced_gpu_hours: float = Field(description="GPU time of types with no price set.")
    by_day: list[DayCost]
    by_kind: list[KindCost]
    budget: BudgetOut


class TeamTotal(BaseModel):
    """A team's share of the platform's spend, by day."""

    team: str
    total: float
    by_day: list[DayCost]


class PlatformSpendOut(BaseModel):
    """Every team's spend in one month."""

    month: str
    currency: str
    total: float
    gpu_hours: float
    unpriced_gpu_hours: float
    by_day: list[DayCost]
    by_kind: list[KindCost]
    by_team: list[TeamTotal]


class JobCost(BaseModel):
    """What a job used and cost, beside what it was expected to."""

    gpu_type: str | None
    gpus: int
    gpu_hours: float
    cpu_hours: float
    price_per_gpu_hour: float | None
    cost: float | None = Field(description="None: GPU time of a type with no price set.")
    currency: str
    estimate: dict[str, object] | None = None


class EstimateOut(BaseModel):
    """Expected GPU-hours and price of a fine-tune, and the budget's word on it."""

    gpu_type: str | None
    gpus: int
    tokens: int
    gpu_hours: float | None
    price: float | None
    currency: str
    basis: str = Field(description="measured, flops-model, cpu or unknown.")
    detail: str
    budget_warning: str | None = None
    budget_refusal: str | None = None
