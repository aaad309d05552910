"""`tailor admin`: bootstrap and platform administration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from tailor.config import get_settings
from tailor.db import migrate
from tailor.db.session import engine_for, session_factory
from tailor.tokens.service import create_admin_token

admin_app = typer.Typer(help="Platform administration.", no_args_is_help=True)


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


def register(app: typer.Typer, api_errors: Callable[[Any], Any]) -> None:
    """Attach `tailor admin` to the root app."""
    app.add_typer(admin_app, name="admin")
