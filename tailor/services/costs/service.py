"""Prices, budgets, spend and estimates over the database; the decisions are `pricing` and
`estimate` (pure). The caller's transaction commits."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from tailor import audit
from tailor.config import Settings
from tailor.db.base import utcnow
from tailor.db.models import (
    BaseModelEntry,
    Dataset,
    EndpointUsage,
    GpuPrice,
    Job,
    JobState,
    Team,
    TeamBudget,
)
from tailor.errors import BudgetExceeded, Forbidden, InvalidInput, NotFound
from tailor.jobs.usage import Usage, local_gpu_count
from tailor.services.base_models import service as catalog
from tailor.services.costs import estimate as model
from tailor.services.costs.pricing import (
    Budget,
    Charge,
    PricePoint,
    Prices,
    Spend,
    Stretch,
    add_up,
    budget_refusal,
    budget_warning,
    endpoint_charges,
    job_charge,
    month_of,
    parse_month,
)
from tailor.services.costs.schemas import (
    BudgetIn,
    BudgetOut,
    DayCost,
    EstimateOut,
    JobCost,
    KindCost,
    PlatformSpendOut,
    PriceOut,
    TeamSpendOut,
    TeamTotal,
)
from tailor.stages.train.auto import choose
from tailor.stages.train.spec import TrainSpec
from tailor.tenancy import Principal, TeamAccess

HOUR = 3600.0


def _require_admin(principal: Principal, what: str) -> None:
    if not principal.platform_admin:
        raise Forbidden(f"only platform admins {what}")


# --- prices ---------------------------------------------------------------------------------


def load_prices(session: Session) -> Prices:
    """Every price ever set (a short table: one row per change)."""
    rows = session.scalars(select(GpuPrice)).all()
    return Prices([PricePoint(r.gpu_type, r.price_per_gpu_hour, r.effective_from) for r in rows])


def set_price(
    session: Session, principal: Principal, gpu_type: str, price: float, settings: Settings
) -> PriceOut:
    """A new price per GPU-hour for `gpu_type`, in effect from now (platform admins)."""
    _require_admin(principal, "set GPU prices")
    row = GpuPrice(
        gpu_type=gpu_type,
        price_per_gpu_hour=price,
        effective_from=utcnow(),
        created_by=principal.user_id,
    )
    session.add(row)
    session.flush()
    audit.record(
        session, principal, "price.set", resource=f"gpu-prices/{gpu_type}",
        detail={"price_per_gpu_hour": price, "currency": settings.currency},
    )  # fmt: skip
    return PriceOut(
        gpu_type=gpu_type,
        price_per_gpu_hour=price,
        currency=settings.currency,
        effective_from=row.effective_from,
    )


def list_prices(session: Session, settings: Settings) -> list[PriceOut]:
    """The price in effect now of every GPU type that has one."""
    newest: dict[str, GpuPrice] = {}
    for row in session.scalars(select(GpuPrice).order_by(GpuPrice.effective_from, GpuPrice.id)):
        newest[row.gpu_type] = row
    return [
        PriceOut(
            gpu_type=t,
            price_per_gpu_hour=r.price_per_gpu_hour,
            currency=settings.currency,
            effective_from=r.effective_from,
        )
        for t, r in sorted(newest.items())
    ]


# --- spend ----------------------------------------------------------------------------------


def charges(
    session: Session, since: datetime, until: datetime, team_id: int | None = None
) -> list[Charge]:
    """Every job that ended (or still runs) in [since, until) and every endpoint stretch in
    it, priced."""
    prices = load_prices(session)
    now = utcnow()
    jobs = select(Job).where(
        or_(
            Job.finished_at.is_(None),
            (Job.finished_at >= since) & (Job.finished_at < until),
        )
    )
    stretches = select(EndpointUsage).where(
        EndpointUsage.started_at < until,
        or_(EndpointUsage.ended_at.is_(None), EndpointUsage.ended_at > since),
    )
    if team_id is not None:
        jobs = jobs.where(Job.team_id == team_id)
        stretches = stretches.where(EndpointUsage.team_id == team_id)
    found: list[Charge] = []
    for job in session.scalars(jobs):
        ended = job.finished_at or now
        if job.usage and since <= ended < until:
            found.append(job_charge(job.team_id, job.kind, Usage.of(job.usage), ended, prices))
    for row in session.scalars(stretches):
        stretch = Stretch(
            row.team_id, row.gpu_type, row.replicas, row.gpus_per_replica, row.started_at,
            row.ended_at,
        )  # fmt: skip
        found.extend(endpoint_charges(stretch, since, min(until, now), prices))
    return found


def _month(month: str | None) -> tuple[str, datetime, datetime]:
    try:
        start, end = month_of(parse_month(month) if month else utcnow())
    except ValueError:
        raise InvalidInput(f"month must be YYYY-MM, not {month!r}", field="month") from None
    return start.strftime("%Y-%m"), start, end


def _days(by_day: dict[date, float]) -> list[DayCost]:
    return [DayCost(day=d, cost=round(c, 4)) for d, c in by_day.items()]


def _kinds(spend: Spend) -> list[KindCost]:
    return [
        KindCost(kind=k, cost=round(c, 4), gpu_hours=round(spend.by_kind_gpu_seconds[k] / HOUR, 6))
        for k, c in spend.by_kind.items()
    ]


def team_spend(
    session: Session, access: TeamAccess, settings: Settings, month: str | None = None
) -> TeamSpendOut:
    """The team's spend in `month` (YYYY-MM, default this one): by day and by kind."""
    label, since, until = _month(month)
    spend = add_up(charges(session, since, until, access.team_id))
    return TeamSpendOut(
        team=access.team.slug,
        month=label,
        currency=settings.currency,
        total=round(spend.total, 4),
        gpu_hours=round(spend.gpu_seconds / HOUR, 6),
        cpu_hours=round(spend.cpu_seconds / HOUR, 6),
        unpriced_gpu_hours=round(spend.unpriced_gpu_seconds / HOUR, 6),
        by_day=_days(spend.by_day),
        by_kind=_kinds(spend),
        budget=budget_of(session, access.team, settings),
    )


def team_spend_by_kind_day(
    session: Session, access: TeamAccess, month: str | None = None
) -> dict[str, dict[date, float]]:
    """The team's spend in `month` per job kind, by day (the console's plot series)."""
    _label, since, until = _month(month)
    return add_up(charges(session, since, until, access.team_id)).by_kind_day


def platform_spend(
    session: Session, principal: Principal, settings: Settings, month: str | None = None
) -> PlatformSpendOut:
    """Every team's spend in `month` (platform admins)."""
    _require_admin(principal, "see the platform's spend")
    label, since, until = _month(month)
    spend = add_up(charges(session, since, until))
    slugs = {team_id: slug for team_id, slug in session.execute(select(Team.id, Team.slug))}
    by_team = sorted(
        (
            TeamTotal(team=slugs.get(t, f"team {t}"), total=round(total, 4),
                      by_day=_days(spend.by_team_day.get(t, {})))
            for t, total in spend.by_team.items()
        ),
        key=lambda t: (-t.total, t.team),
    )  # fmt: skip
    return PlatformSpendOut(
        month=label,
        currency=settings.currency,
        total=round(spend.total, 4),
        gpu_hours=round(spend.gpu_seconds / HOUR, 6),
        unpriced_gpu_hours=round(spend.unpriced_gpu_seconds / HOUR, 6),
        by_day=_days(spend.by_day),
        by_kind=_kinds(spend),
        by_team=by_team,
    )


def month_to_date(session: Session, team_id: int) -> float:
    """What the team has spent this calendar month (UTC) so far."""
    since, until = month_of(utcnow())
    return add_up(charges(session, since, until, team_id)).total


# --- budgets --------------------------------------------------------------------------------


def _budget(session: Session, team_id: int) -> Budget:
    row = session.get(TeamBudget, team_id)
    return Budget(row.soft_limit, row.hard_limit) if row else Budget()


def budget_of(session: Session, team: Team, settings: Settings) -> BudgetOut:
    """The team's budget and this month's spend against it."""
    budget = _budget(session, team.id)
    spent = month_to_date(session, team.id)
    refusal = budget_refusal(team.slug, spent, 0.0, budget, settings.currency)
    warning = budget_warning(team.slug, spent, budget, settings.currency)
    return BudgetOut(
        team=team.slug,
        currency=settings.currency,
        soft_limit=budget.soft_limit,
        hard_limit=budget.hard_limit,
        spent=round(spent, 4),
        state="exhausted" if refusal else "warning" if warning else "ok",
        warning=refusal or warning,
    )


def set_budget(
    session: Session, access: TeamAccess, body: BudgetIn, settings: Settings
) -> BudgetOut:
    """Set the team's monthly budget (platform admins: a team does not set its own limit)."""
    _require_admin(access.principal, "set a team's budget")
    row = session.get(TeamBudget, access.team_id)
    if row is None:
        row = TeamBudget(team_id=access.team_id)
        session.add(row)
    row.soft_limit, row.hard_limit = body.soft_limit, body.hard_limit
    session.flush()
    audit.record(
        session, access.principal, "budget.set", team_id=access.team_id,
        resource=f"teams/{access.team.slug}/budget", detail=body.model_dump(),
    )  # fmt: skip
    return budget_of(session, access.team, settings)


# --- a job's cost and a fine-tune's estimate --------------------------------------------------


def job_cost(session: Session, job: Job, settings: Settings) -> JobCost | None:
    """What the job used and cost so far; None before anything was recorded."""
    if not job.usage:
        return None
    usage = Usage.of(job.usage)
    price = load_prices(session).at(usage.gpu_type, job.finished_at or utcnow())
    cost = None if price is None else usage.gpu_seconds / HOUR * price
    return JobCost(
        gpu_type=usage.gpu_type,
        gpus=usage.gpus,
        gpu_hours=round(usage.gpu_seconds / HOUR, 6),
        cpu_hours=round(usage.cpu_seconds / HOUR, 6),
        price_per_gpu_hour=price,
        cost=None if cost is None else round(cost, 4),
        currency=settings.currency,
        estimate=job.estimate or None,
    )


def training_gpus(team: Team, spec: TrainSpec, settings: Settings) -> tuple[str | None, int]:
    """The GPU type and count a fine-tune will run on, as its executor will choose them."""
    gpus = spec.num_processes if spec.method == "full" else 1
    if settings.executor == "kubernetes":
        return (team.cluster_quota or {}).get("gpuType") or settings.default_gpu_type, gpus
    available = local_gpu_count()
    return (settings.local_gpu_type, min(gpus, available)) if available else (None, 0)


def _params(entry: BaseModelEntry) -> int | None:
    config = Path(entry.source) / "config.json"
    if not entry.source.startswith(("s3://", "hf://")) and config.is_file():
        try:
            found = model.params_from_config(json.loads(config.read_text()))
        except (OSError, ValueError):
            found = None
        if found:
            return found
    return model.params_from_name(entry.name) or model.params_from_name(entry.source)


def _throughput(session: Session, spec: TrainSpec, gpu_type: str) -> float | None:
    """Tokens per GPU-second of the platform's recent fine-tunes of this base, method, GPU."""
    recent = session.scalars(
        select(Job)
        .where(Job.kind == "finetune", Job.state == JobState.succeeded)
        .order_by(Job.id.desc())
        .limit(200)
    )
    runs = []
    for job in recent:
        usage = Usage.of(job.usage)
        same = (
            job.spec.get("base_model") == spec.base_model
            and job.spec.get("method") == spec.method
            and usage.gpu_type == gpu_type
        )
        tokens = job.result.get("tokens_seen") or (job.estimate or {}).get("tokens") or 0
        if same and usage.gpu_seconds > 0 and tokens:
            runs.append((int(tokens), usage.gpu_seconds))
    return model.measured_throughput(runs)


def planned_tokens(spec: TrainSpec, dataset_tokens: int) -> int:
    """Tokens the run will train on, as it will choose its steps."""
    chosen = choose(spec, dataset_tokens, None)
    processes = spec.num_processes if spec.method == "full" else 1
    return int((chosen.steps or 0) * chosen.tokens_per_step * processes)


def estimate_finetune(
    session: Session, access: TeamAccess, spec: TrainSpec, settings: Settings
) -> EstimateOut:
    """Expected GPU-hours and price of `spec`, and what the team's budget says about it."""
    dataset = session.scalar(
        select(Dataset).where(Dataset.uid == spec.dataset_id, Dataset.team_id == access.team_id)
    )
    if dataset is None:
        raise NotFound(f"dataset {spec.dataset_id} not found")
    entry = catalog.resolve(session, spec.base_model)
    tokens = planned_tokens(spec, int(dataset.stats.get("tokens_estimate") or 0))
    gpu_type, gpus = training_gpus(access.team, spec, settings)
    prices = load_prices(session)
    found = model.estimate(
        tokens=tokens,
        method=spec.method,
        gpu_type=gpu_type,
        gpus=gpus,
        params=_params(entry),
        throughput=_throughput(session, spec, gpu_type) if gpu_type else None,
        price_per_gpu_hour=prices.at(gpu_type, utcnow()),
    )
    budget = _budget(session, access.team_id)
    spent = month_to_date(session, access.team_id)
    return EstimateOut(
        gpu_type=found.gpu_type,
        gpus=found.gpus,
        tokens=found.tokens,
        gpu_hours=None if found.gpu_hours is None else round(found.gpu_hours, 9),
        price=None if found.price is None else round(found.price, 6),
        basis=found.basis,
        detail=found.detail,
        currency=settings.currency,
        budget_warning=budget_warning(access.team.slug, spent, budget, settings.currency),
        budget_refusal=budget_refusal(
            access.team.slug, spent, found.price or 0.0, budget, settings.currency
        ),
    )


def require_budget(estimate: EstimateOut) -> None:
    """Refuse new training the team's hard limit does not allow (402, nothing created)."""
    if estimate.budget_refusal:
        raise BudgetExceeded(estimate.budget_refusal)


# --- endpoints ------------------------------------------------------------------------------


def endpoint_started(
    session: Session,
    team_id: int,
    endpoint: str,
    replicas: int,
    gpus_per_replica: int,
    gpu_type: str | None,
) -> None:
    """An endpoint runs from now with this many replicas and GPUs (closing its last stretch)."""
    endpoint_stopped(session, team_id, endpoint)
    session.add(
        EndpointUsage(
            team_id=team_id,
            endpoint=endpoint,
            gpu_type=gpu_type if gpus_per_replica else None,
            replicas=replicas,
            gpus_per_replica=gpus_per_replica,
            started_at=utcnow(),
        )
    )


def endpoint_stopped(session: Session, team_id: int, endpoint: str) -> None:
    """The endpoint's running stretch (if any) ends now."""
    now = utcnow()
    for row in session.scalars(
        select(EndpointUsage).where(
            EndpointUsage.team_id == team_id,
            EndpointUsage.endpoint == endpoint,
            EndpointUsage.ended_at.is_(None),
        )
    ):
        row.ended_at = now
