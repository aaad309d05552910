"""`tailor team`: teams and their members."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from tailor.cli.client import Client
from tailor.cli.output import Output, OutputOpt, show

team_app = typer.Typer(help="Teams and members.", no_args_is_help=True)
TEAM_COLS = ("slug", "name", "gpu_quota", "created_at")
MEMBER_COLS = ("user_id", "email", "role", "created_at")


def create(
    slug: str,
    name: str = typer.Option(None, help="Display name (default: slug)."),
    output: Output = OutputOpt,
) -> None:
    """Create a team; you become its owner."""
    show(Client().post("/v1/teams", {"slug": slug, "name": name or slug}), output, TEAM_COLS)


def list_(output: Output = OutputOpt) -> None:
    """Teams you belong to."""
    show(Client().list_all("/v1/teams"), output, TEAM_COLS)


def get(slug: str, output: Output = OutputOpt) -> None:
    """Show a team."""
    show(Client().get(f"/v1/teams/{slug}"), output, TEAM_COLS)


def delete(slug: str, yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete a team and everything in it."""
    if not yes:
        typer.confirm(f"Delete team {slug} and everything in it?", abort=True)
    # Asked (or --yes): that is the confirmation the API wants for a team that holds work.
    Client().request("DELETE", f"/v1/teams/{slug}", params={"confirm": slug})
    typer.echo(f"deleted team {slug}")


def add_member(
    slug: str, email: str, role: str = typer.Option("member"), output: Output = OutputOpt
) -> None:
    """Add a person to a team."""
    body = {"email": email, "role": role}
    show(Client().post(f"/v1/teams/{slug}/members", body), output, MEMBER_COLS)


def members(slug: str, output: Output = OutputOpt) -> None:
    """List a team's members."""
    show(Client().list_all(f"/v1/teams/{slug}/members"), output, MEMBER_COLS)


def create_token(
    slug: str,
    name: str = typer.Option(..., help="What it is for."),
    scopes: str = typer.Option("read,write", help="Comma-separated scopes."),
    days: int = typer.Option(90, help="Days until it expires."),
    machine_role: str = typer.Option(
        None,
        help="Issue a machine token (CI, automation) with this role in the team, at most "
        "yours: its own principal, audited as itself. Default: a token that acts as you.",
    ),
) -> None:
    """Issue a team token and print it once."""
    body = {"name": name, "scopes": scopes.split(","), "expires_in_days": days}
    if machine_role:
        body["machine_role"] = machine_role
    typer.echo(Client().post(f"/v1/teams/{slug}/tokens", body)["token"])


def register(app: typer.Typer, api_errors: Callable[[Any], Any]) -> None:
    """Attach `tailor team` to the root app."""
    for name, fn in (
        ("create", create),
        ("list", list_),
        ("show", get),
        ("delete", delete),
        ("add-member", add_member),
        ("members", members),
        ("create-token", create_token),
    ):
        team_app.command(name)(api_errors(fn))
    app.add_typer(team_app, name="team")
