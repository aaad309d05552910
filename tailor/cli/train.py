"""`tailor train run`: the training entrypoint every executor runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

train_app = typer.Typer(
    help="Run training (the entrypoint of every executor).", no_args_is_help=True
)


@train_app.command("run")
def run(
    spec_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="TrainSpec JSON/YAML."),
    job_id: str = typer.Option(..., help="The job this run reports for (checkpoints key)."),
    work_dir: Path | None = typer.Option(None, help="Local scratch directory."),
    stop_file: Path | None = typer.Option(None, help="Stop at the next step once this exists."),
) -> None:
    """Train from a TrainSpec, printing JSON-line events on stdout.

    Exit status: 0 done, 1 failed, 3 the spec can never work, 4 stopped on request.
    """
    from tailor.stages.train.entrypoint import run_command  # deferred: loads torch
    from tailor.stages.train.protocol import record_exit

    code = run_command(spec_path, job_id, work_dir, stop_file)
    record_exit(code)
    raise typer.Exit(code)


@train_app.command(
    "torchrun", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def torchrun(ctx: typer.Context) -> None:
    """torchrun with the same arguments, exiting with the status the ranks chose.

    torchrun reports any failed rank as 1; this keeps 3 (a spec error, never retried) and 4
    (stopped) so a Job's podFailurePolicy and a JobSet's failurePolicy can tell them apart.
    """
    from tailor.stages.train.protocol import run_torchrun

    raise typer.Exit(run_torchrun(list(ctx.args)))


def register(app: typer.Typer, api_errors: Callable[[Any], Any]) -> None:
    """Attach `tailor train` to the root app."""
    app.add_typer(train_app, name="train")
