"""`tailor`: run the platform and drive it from a terminal."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from tailor.cli import admin, bases, costs, evals, pipeline, repos, server, teams, train
from tailor.cli.client import ApiError
from tailor.cli.output import err_console

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    help="Tailor: per-team code assistants from your private code.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def api_errors(fn: F) -> F:
    """Turn API problems into a one-line message and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            err_console.print(f"[red]error[/red] {exc}")
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


for module in (admin, bases, teams, repos, pipeline, evals, train, server, costs):
    module.register(app, api_errors)


if __name__ == "__main__":
    app()
