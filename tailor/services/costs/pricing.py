"""Pure decisions about money: the price in effect, what a job or an endpoint cost, how a
month's spend splits by day, team and kind, and what a budget says about it.

No database here: the service reads rows, turns them into these values and calls these.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from tailor.jobs.usage import Usage

HOUR = 3600.0


@dataclass(frozen=True)
class PricePoint:
    """A GPU type's price per GPU-hour from `effective_from` on."""

    gpu_type: str
    price_per_gpu_hour: float
    effective_from: datetime


@dataclass(frozen=True)
class Prices:
    """Every price ever set, by GPU type and time (the service loads them once a request)."""

    points: Sequence[PricePoint]

    def at(self, gpu_type: str | None, when: datetime) -> float | None:
        """The price per GPU-hour of `gpu_type` at `when`; None when none was set by then."""
        if gpu_type is None:
            return 0.0  # no GPU, nothing to price
        history = sorted(
            (p for p in self.points if p.gpu_type == gpu_type), key=lambda p: p.effective_from
        )
        index = bisect.bisect_right([p.effective_from for p in history], when) - 1
        return history[index].price_per_gpu_hour if index >= 0 else None

    def current(self) -> dict[str, float]:
        """The newest price of each GPU type."""
        newest: dict[str, PricePoint] = {}
        for p in self.points:
            if p.gpu_type not in newest or p.effective_from >= newest[p.gpu_type].effective_from:
                newest[p.gpu_type] = p
        return {t: p.price_per_gpu_hour for t, p in sorted(newest.items())}


@dataclass(frozen=True)
class Charge:
    """What one job, or one day of an endpoint, cost a team."""

    team_id: int
    kind: str  # the job kind (finetune, evaluation, harvest, ...) or "endpoint"
    day: date
    gpu_type: str | None
    gpu_seconds: float
    cpu_seconds: float
    cost: float
    priced: bool  # False: GPU time of a type with no price (counted as 0, shown as unpriced)

    @property
    def gpu_hours(self) -> float:
        """GPU-seconds in hours."""
        return self.gpu_seconds / HOUR


def cost_of(gpu_seconds: float, price_per_gpu_hour: float | None) -> float:
    """GPU-hours times the price (0 without a price)."""
    return gpu_seconds / HOUR * (price_per_gpu_hour or 0.0)


def job_charge(team_id: int, kind: str, usage: Usage, ended_at: datetime, prices: Prices) -> Charge:
    """A finished (or running) job's charge, priced at its GPU type's price when it ended."""
    price = prices.at(usage.gpu_type, ended_at)
    return Charge(
        team_id=team_id,
        kind=kind,
        day=ended_at.astimezone(UTC).date(),
        gpu_type=usage.gpu_type,
        gpu_seconds=usage.gpu_seconds,
        cpu_seconds=usage.cpu_seconds,
        cost=cost_of(usage.gpu_seconds, price),
        priced=price is not None or usage.gpu_seconds == 0,
    )


def day_slices(start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    """[start, end) cut at UTC midnights: (slice start, seconds) for each day it touches."""
    slices: list[tuple[datetime, float]] = []
    at = start.astimezone(UTC)
    end = end.astimezone(UTC)
    while at < end:
        midnight = datetime.combine(at.date() + timedelta(days=1), time(), tzinfo=UTC)
        stop = min(midnight, end)
        slices.append((at, (stop - at).total_seconds()))
        at = stop
    return slices


@dataclass(frozen=True)
class Stretch:
    """An endpoint running with `replicas` x `gpus_per_replica` GPUs from `start` to `end`."""

    team_id: int
    gpu_type: str | None
    replicas: int
    gpus_per_replica: int
    start: datetime
    end: datetime | None  # None: still running


def endpoint_charges(
    stretch: Stretch, since: datetime, until: datetime, prices: Prices
) -> list[Charge]:
    """One charge per day of the part of `stretch` inside [since, until): replicas x GPUs x time."""
    start = max(stretch.start, since)
    end = min(stretch.end or until, until)
    gpus = stretch.replicas * stretch.gpus_per_replica
    charges = []
    for at, seconds in day_slices(start, end):
        price = prices.at(stretch.gpu_type if gpus else None, at)
        charges.append(
            Charge(
                team_id=stretch.team_id,
                kind="endpoint",
                day=at.date(),
                gpu_type=stretch.gpu_type if gpus else None,
                gpu_seconds=seconds * gpus,
                cpu_seconds=0.0,
                cost=cost_of(seconds * gpus, price),
                priced=price is not None or gpus == 0,
            )
        )
    return charges


@dataclass
class Spend:
    """A period's charges added up: in total, by day, by kind, by team, by team and day."""

    total: float = 0.0
    gpu_seconds: float = 0.0
    cpu_seconds: float = 0.0
    unpriced_gpu_seconds: float = 0.0
    by_day: dict[date, float] = field(default_factory=dict)
    by_kind: dict[str, float] = field(default_factory=dict)
    by_kind_gpu_seconds: dict[str, float] = field(default_factory=dict)
    by_team: dict[int, float] = field(default_factory=dict)
    by_team_day: dict[int, dict[date, float]] = field(default_factory=dict)
    by_kind_day: dict[str, dict[date, float]] = field(default_factory=dict)


def add_up(charges: Iterable[Charge]) -> Spend:
    """Sum charges every way the API and the console show them."""
    spend = Spend()
    by_day: dict[date, float] = defaultdict(float)
    by_kind: dict[str, float] = defaultdict(float)
    by_kind_gpu: dict[str, float] = defaultdict(float)
    by_team: dict[int, float] = defaultdict(float)
    by_team_day: dict[int, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    by_kind_day: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    for c in charges:
        spend.total += c.cost
        spend.gpu_seconds += c.gpu_seconds
        spend.cpu_seconds += c.cpu_seconds
        if not c.priced:
            spend.unpriced_gpu_seconds += c.gpu_seconds
        by_day[c.day] += c.cost
        by_kind[c.kind] += c.cost
        by_kind_gpu[c.kind] += c.gpu_seconds
        by_team[c.team_id] += c.cost
        by_team_day[c.team_id][c.day] += c.cost
        by_kind_day[c.kind][c.day] += c.cost
    spend.by_day = dict(sorted(by_day.items()))
    spend.by_kind = dict(sorted(by_kind.items()))
    spend.by_kind_gpu_seconds = dict(sorted(by_kind_gpu.items()))
    spend.by_team = dict(by_team)
    spend.by_team_day = {t: dict(sorted(d.items())) for t, d in by_team_day.items()}
    spend.by_kind_day = {k: dict(sorted(d.items())) for k, d in by_kind_day.items()}
    return spend


def month_of(when: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month holding `when`: [first midnight, next month's first midnight)."""
    when = when.astimezone(UTC)
    start = datetime(when.year, when.month, 1, tzinfo=UTC)
    following = datetime(when.year + when.month // 12, when.month % 12 + 1, 1, tzinfo=UTC)
    return start, following


def parse_month(text: str) -> datetime:
    """`YYYY-MM` as the first instant of that month (UTC); ValueError otherwise."""
    year, month = text.split("-")
    if len(year) != 4 or len(month) != 2:
        raise ValueError(text)
    return datetime(int(year), int(month), 1, tzinfo=UTC)


@dataclass(frozen=True)
class Budget:
    """A team's monthly limits (None: no such limit)."""

    soft_limit: float | None = None
    hard_limit: float | None = None


def budget_warning(team: str, spent: float, budget: Budget, currency: str) -> str | None:
    """The warning once the month's spend passed the soft limit; None before."""
    if budget.soft_limit is None or spent < budget.soft_limit:
        return None
    hard = (
        f"; new training stops at {money(budget.hard_limit, currency)}"
        if (budget.hard_limit is not None)
        else ""
    )
    return (
        f"team {team} has spent {money(spent, currency)} this month, past its budget's soft "
        f"limit of {money(budget.soft_limit, currency)}{hard}"
    )


def budget_refusal(
    team: str, spent: float, expected: float, budget: Budget, currency: str
) -> str | None:
    """Why new training is refused (hard limit reached, or the estimate would pass it); None
    when it may start."""
    if budget.hard_limit is None:
        return None
    limit = money(budget.hard_limit, currency)
    if spent >= budget.hard_limit:
        return (
            f"team {team}'s monthly budget is spent: {money(spent, currency)} of its hard limit "
            f"{limit}; a platform admin can raise the limit (tailor team budget set)"
        )
    if spent + expected > budget.hard_limit:
        return (
            f"team {team}'s monthly budget would be passed: {money(spent, currency)} spent of "
            f"its hard limit {limit}, and this fine-tune is estimated at "
            f"{money(expected, currency)}; train less (max_steps, epochs) or ask a platform "
            "admin to raise the limit"
        )
    return None


def money(amount: float | None, currency: str) -> str:
    """An amount as people read it: `12.50 USD`."""
    return f"{amount or 0.0:,.2f} {currency}"
