"""`tailor admin`: bootstrap and platform administration."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from tailor.cli.client import Client
from tailor.cli.output import Output, OutputOpt, show
from tailor.config import get_settings
from tailor.db import migrate
from tailor.db.session import engine_for, session_factory
from tailor.services.teams.schemas import ChartTeam
from tailor.services.tokens.service import create_admin_token

admin_app = typer.Typer(help="Platform administration.", no_args_is_help=True)
groups_app = typer.Typer(
    help="Identity-provider groups that give teams and roles at sign-in.", no_args_is_help=True
)
MAPPING_COLS = ("id", "group", "team", "role", "created_at")
MAPPINGS = "/v1/admin/group-mappings"


@admin_app.command("create-token")
def create_token(
    email: str = typer.Option("admin@localhost", help="The admin user's e-mail."),
    name: str = typer.Option("bootstrap", help="Label for the token."),
) -> None:
    """Create a platform-admin token directly in the database (prints it once)."""
    settings = get_settings()
    settings.ensure_workspace()
    migrate.upgrade(settings.database_url)
    with session_factory(engine_for(settings.database_url))() as session:
        token = create_admin_token(session, email, name)
        session.commit()
    typer.echo(token)


@admin_app.command("seed-teams")
def seed_teams(
    path: Path = typer.Argument(..., help="JSON list of teams as the chart's `teams` value."),
    url: str = typer.Option(None, envvar="TAILOR_URL", help="The API's URL."),
) -> None:
    """Create or update the teams a file declares, through the API (idempotent).

    Authenticates with $TAILOR_OPERATOR_TOKEN (the chart's operator token), else
    $TAILOR_TOKEN (a platform admin's). Every team is checked before the first is sent.
    """
    try:
        raw = json.loads(path.read_text())
        seeds = [(t.name, t.seed()) for t in map(ChartTeam.model_validate, raw or [])]
    except (OSError, ValueError, TypeError) as exc:
        detail = exc.errors() if isinstance(exc, ValidationError) else exc
        raise typer.BadParameter(f"{path}: {detail}", param_hint="PATH") from exc
    client = Client(url=url, token=os.environ.get("TAILOR_OPERATOR_TOKEN") or None)
    for name, seed in seeds:
        client.request("PUT", f"/v1/internal/teams/{name}", json=seed.model_dump())
        typer.echo(f"seeded team {name}")


def list_mappings(output: Output = OutputOpt) -> None:
    """Every group mapping."""
    show(Client().get(MAPPINGS), output, MAPPING_COLS)


def add_mapping(
    group: str = typer.Argument(..., help="Group name, exactly as in the groups claim."),
    team: str = typer.Argument(..., help="Team slug."),
    role: str = typer.Option("member", help="owner, admin, member or viewer."),
    output: Output = OutputOpt,
) -> None:
    """Members of GROUP get ROLE in TEAM from their next sign-in on."""
    body = {"group": group, "team": team, "role": role}
    show(Client().post(MAPPINGS, body), output, MAPPING_COLS)


def remove_mapping(mapping_id: int) -> None:
    """Remove a mapping; the memberships it gave go at each member's next sign-in."""
    Client().delete(f"{MAPPINGS}/{mapping_id}")
    typer.echo(f"removed group mapping {mapping_id}")


def register(app: typer.Typer, api_errors: Callable[[Any], Any]) -> None:
    """Attach `tailor admin` to the root app."""
    groups_app.command("list")(api_errors(list_mappings))
    groups_app.command("add")(api_errors(add_mapping))
    groups_app.command("remove")(api_errors(remove_mapping))
    admin_app.add_typer(groups_app, name="group-mappings")
    app.add_typer(admin_app, name="admin")
