"""`tailor repo`: register and manage a team's repositories."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from tailor.cli.client import Client
from tailor.cli.output import Output, OutputOpt, show

repo_app = typer.Typer(help="A team's git repositories.", no_args_is_help=True)
COLS = ("name", "url", "branch", "credential_kind", "has_credential", "last_harvested_commit")


def add(
    team: str,
    name: str,
    url: str,
    branch: str = typer.Option("main"),
    include: list[str] = typer.Option([], help="Glob of paths to include (repeatable)."),
    exclude: list[str] = typer.Option([], help="Glob of paths to exclude (repeatable)."),
    token_env: str = typer.Option(None, help="Read an HTTPS token from this env variable."),
    ssh_key_file: Path = typer.Option(None, help="Read an SSH deploy key from this file."),
    output: Output = OutputOpt,
) -> None:
    """Register a repository; credentials come from env or a file, never the command line."""
    body: dict[str, Any] = {
        "name": name,
        "url": url,
        "branch": branch,
        "include": include,
        "exclude": exclude,
    }
    if token_env:
        if token_env not in os.environ:
            raise typer.BadParameter(f"environment variable {token_env} is not set")
        body |= {"credential_kind": "token", "credential": os.environ[token_env]}
    elif ssh_key_file:
        body |= {"credential_kind": "ssh_key", "credential": ssh_key_file.read_text()}
    show(Client().post(f"/v1/teams/{team}/repositories", body), output, COLS)


def list_(team: str, output: Output = OutputOpt) -> None:
    """List a team's repositories."""
    show(Client().list_all(f"/v1/teams/{team}/repositories"), output, COLS)


def get(team: str, name: str, output: Output = OutputOpt) -> None:
    """Show one repository."""
    show(Client().get(f"/v1/teams/{team}/repositories/{name}"), output, COLS)


def remove(team: str, name: str) -> None:
    """Forget a repository."""
    Client().delete(f"/v1/teams/{team}/repositories/{name}")
    typer.echo(f"removed {team}/{name}")


def register(app: typer.Typer, api_errors: Callable[[Any], Any]) -> None:
    """Attach `tailor repo` to the root app."""
    for name, fn in (("add", add), ("list", list_), ("show", get), ("remove", remove)):
        repo_app.command(name)(api_errors(fn))
    app.add_typer(repo_app, name="repo")
