"""`tailor eval`: score an adapter against its base, locally (`run`) or on the platform."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from tailor.cli.client import Client
from tailor.cli.follow import follow_job
from tailor.cli.output import Output, OutputOpt, console, show

eval_app = typer.Typer(help="Evaluate adapters against their base model.", no_args_is_help=True)


def _report(result: dict[str, Any], output: Output) -> None:
    from tailor.stages.evaluate.render import render_comparison
    from tailor.stages.evaluate.spec import EvalReport

    if output == Output.json:
        show(result, output)
        return
    console.print(render_comparison(EvalReport.model_validate(result)))


def eval_run(
    spec: Path = typer.Argument(..., exists=True, dir_okay=False, help="An EvalSpec (JSON)."),
    out: Path | None = typer.Option(None, help="Also write the report here (JSON)."),
    output: Output = OutputOpt,
) -> None:
    """Run an evaluation on this machine (the entrypoint the worker runs too)."""
    from tailor.config import get_settings
    from tailor.stages.evaluate.entrypoint import evaluate
    from tailor.stages.evaluate.spec import EvalSpec
    from tailor.storage import get_store

    try:
        parsed = EvalSpec.model_validate_json(spec.read_text())
    except ValidationError as exc:
        raise typer.BadParameter(f"invalid EvalSpec: {exc}") from exc
    report = evaluate(parsed, get_store(get_settings())).model_dump(mode="json")
    if out:
        out.write_text(json.dumps(report, indent=2))
    _report(report, output)


def eval_start(
    team: str,
    adapter: str,
    version: int | None = typer.Option(None, help="Default: the latest version."),
    humaneval_subset: int | None = typer.Option(
        None, help="Only the first N HumanEval problems (default: all 164)."
    ),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Wait and show the report."),
    output: Output = OutputOpt,
) -> None:
    """Evaluate a version of the team's adapter on the platform."""
    api = Client()
    body: dict[str, Any] = {"adapter": adapter, "version": version}
    if humaneval_subset is not None:
        body["humaneval"] = {"subset": humaneval_subset}
    job = api.post(f"/v1/teams/{team}/evaluations", body)
    if not follow:
        show(job, output, ("id", "state"))
        return
    job = follow_job(api, team, job["id"])
    if job["state"] != "succeeded":
        console.print(f"[red]{job['state']}[/red] {job.get('error') or ''}")
        raise typer.Exit(1)
    _report(job["result"], output)


def eval_show(team: str, job_id: str, output: Output = OutputOpt) -> None:
    """The base-vs-adapter report of a finished evaluation job."""
    job = Client().get(f"/v1/teams/{team}/jobs/{job_id}")
    if job["kind"] != "evaluation" or job["state"] != "succeeded":
        raise typer.BadParameter(f"job {job_id} is a {job['state']} {job['kind']} job")
    _report(job["result"], output)


def register(app: typer.Typer, api_errors: Callable[[Any], Any]) -> None:
    """Attach `tailor eval` to the root app."""
    eval_app.command("run")(eval_run)
    eval_app.command("start")(api_errors(eval_start))
    eval_app.command("show")(api_errors(eval_show))
    app.add_typer(eval_app, name="eval")
