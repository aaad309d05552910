"""`tailor admin price | spend`, `tailor team budget | spend`, `tailor finetune estimate`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from tailor.cli.admin import admin_app
from tailor.cli.client import Client
from tailor.cli.output import Output, OutputOpt, console, show
from tailor.cli.pipeline import finetune_app, read_spec
from tailor.cli.teams import team_app

price_app = typer.Typer(help="Prices per GPU-hour, by GPU type.", no_args_is_help=True)
budget_app = typer.Typer(help="A team's monthly budget.", no_args_is_help=True)
PRICE_COLS = ("gpu_type", "price_per_gpu_hour", "currency", "effective_from")
BUDGET_COLS = ("team", "soft_limit", "hard_limit", "spent", "currency", "state")
ESTIMATE_COLS = ("gpu_type", "gpus", "tokens", "gpu_hours", "price", "currency", "basis")
MonthOpt = typer.Option(None, help="YYYY-MM (UTC); default this month.")


def price_set(
    gpu_type: str = typer.Argument(..., help="GPU type, e.g. nvidia-a100-80gb or local-gpu."),
    price: float = typer.Argument(..., help="Price per GPU-hour."),
    output: Output = OutputOpt,
) -> None:
    """Set the price per GPU-hour of a GPU type from now on (platform admins)."""
    body = {"price_per_gpu_hour": price}
    show(Client().put(f"/v1/admin/gpu-prices/{gpu_type}", body), output, PRICE_COLS)


def price_list(output: Output = OutputOpt) -> None:
    """The prices in effect now."""
    show(Client().get("/v1/admin/gpu-prices"), output, PRICE_COLS)


def _spend(data: dict[str, Any], output: Output, extra: str = "by_kind") -> None:
    if output == Output.json:
        show(data, output)
        return
    console.print(
        f"{data['month']}: {data['total']:.2f} {data['currency']}, "
        f"{data['gpu_hours']:.4g} GPU-hours"
    )
    show(data[extra], output)
    show(data["by_day"], output, ("day", "cost"))


def platform_spend(month: str | None = MonthOpt, output: Output = OutputOpt) -> None:
    """Every team's spend in a month (platform admins)."""
    data = Client().get("/v1/admin/spend", params={"month": month} if month else None)
    if output == Output.table:
        show([{"team": t["team"], "total": t["total"]} for t in data["by_team"]], output)
    _spend(data, output)


def team_spend(team: str, month: str | None = MonthOpt, output: Output = OutputOpt) -> None:
    """The team's spend in a month, by job kind and by day."""
    data = Client().get(f"/v1/teams/{team}/spend", params={"month": month} if month else None)
    _spend(data, output)
    if output == Output.table and data["budget"]["warning"]:
        console.print(f"[yellow]{data['budget']['warning']}[/yellow]")


def budget_show(team: str, output: Output = OutputOpt) -> None:
    """The team's budget and this month's spend against it."""
    show(Client().get(f"/v1/teams/{team}/budget"), output, BUDGET_COLS)


def budget_set(
    team: str,
    soft: float = typer.Option(None, help="Warn past this much a month (leave out: none)."),
    hard: float = typer.Option(None, help="No new training past this (leave out: none)."),
    output: Output = OutputOpt,
) -> None:
    """Set the team's monthly soft and hard limits (platform admins)."""
    body = {"soft_limit": soft, "hard_limit": hard}
    show(Client().put(f"/v1/teams/{team}/budget", body), output, BUDGET_COLS)


def finetune_estimate(
    team: str,
    spec: Path = typer.Argument(..., exists=True, dir_okay=False),
    output: Output = OutputOpt,
) -> None:
    """What a fine-tune would cost (GPU-hours, price) and whether the budget allows it."""
    body = {"team": team, **read_spec(spec)}
    found = Client().post(f"/v1/teams/{team}/finetunes/estimate", body)
    show(found, output, ESTIMATE_COLS)
    if output == Output.table:
        console.print(found["detail"])
        for key in ("budget_warning", "budget_refusal"):
            if found.get(key):
                console.print(f"[yellow]{found[key]}[/yellow]")


def register(app: typer.Typer, api_errors: Callable[[Any], Any]) -> None:
    """Attach the cost commands to `tailor admin`, `tailor team` and `tailor finetune`."""
    price_app.command("set")(api_errors(price_set))
    price_app.command("list")(api_errors(price_list))
    admin_app.add_typer(price_app, name="price")
    admin_app.command("spend")(api_errors(platform_spend))
    budget_app.command("show")(api_errors(budget_show))
    budget_app.command("set")(api_errors(budget_set))
    team_app.add_typer(budget_app, name="budget")
    team_app.command("spend")(api_errors(team_spend))
    finetune_app.command("estimate")(api_errors(finetune_estimate))
