"""`tailor up`, `tailor db`, `tailor login`: run the embedded platform and point the CLI at it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from tailor.cli.client import ApiError, Client, forget_config, save_config
from tailor.cli.output import console
from tailor.cli.sso import device_sign_in
from tailor.config import get_settings
from tailor.db import migrate

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION."""
    settings = get_settings()
    settings.ensure_workspace()
    migrate.upgrade(settings.database_url, revision)
    console.print(f"schema at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument("base")) -> None:
    """Revert migrations down to REVISION."""
    migrate.downgrade(get_settings().database_url, revision)
    console.print(f"schema at {revision}")


def up(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Celery worker processes (0 = none)."),
    serve_port: int = typer.Option(
        8001, help="Port of the inference gateway (0 = do not serve models)."
    ),
) -> None:
    """Run Tailor on this machine: migrate, start the worker and the gateway, serve the API."""
    import uvicorn

    from tailor.embedded import run_embedded

    settings = get_settings()
    gateway = (host, serve_port) if serve_port else None
    with run_embedded(settings, workers=workers, gateway=gateway):
        console.print(f"Tailor API on http://{host}:{port}  (workspace {settings.workspace})")
        if gateway:
            console.print(f"inference gateway on http://{host}:{serve_port}/v1")
        # By name: the shared library never imports the API package (import-linter checks).
        uvicorn.run("api.main:create_app", factory=True, host=host, port=port, log_level="info")


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8001, help="Port to listen on."),
) -> None:
    """Run the inference gateway: the base model and every team's published adapters, or in
    cluster mode (TAILOR_EXECUTOR=kubernetes) a router to each endpoint's pods."""
    import uvicorn

    from tailor.gateway import cluster_problem
    from tailor.stages.serve.connections import write_timeout_protocol

    settings = get_settings()
    problem = cluster_problem(settings)
    if problem:
        console.print(f"[red]{problem}[/red]")
        raise typer.Exit(2)
    if settings.executor == "kubernetes":
        console.print(f"Tailor gateway on http://{host}:{port}  (routing to endpoint pods)")
    else:
        console.print(f"Tailor gateway on http://{host}:{port}  (base {settings.serve_base_model})")
    uvicorn.run(
        "tailor.gateway:create_gateway",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=30,
        http=write_timeout_protocol(settings.serve_write_timeout_s),
    )


def serve_endpoint(
    config: Path = typer.Option(
        ..., "--config", help="The endpoint's spec (JSON), as the operator mounts it."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
) -> None:
    """Run one endpoint pod: its base model and adapters, answering only the gateway."""
    import uvicorn

    from tailor.stages.serve.connections import write_timeout_protocol
    from tailor.stages.serve.endpoint_pod import EndpointConfigError, create_endpoint_app

    settings = get_settings()
    try:
        app = create_endpoint_app(settings, config)
    except EndpointConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"Tailor endpoint on http://{host}:{port}  (spec {config})")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=30,
        http=write_timeout_protocol(settings.serve_write_timeout_s),
    )


def login(
    sso: bool = typer.Option(
        False, "--sso", help="Sign in through the company's identity provider (device code)."
    ),
    token: str | None = typer.Option(None, help="An API token (asked for unless --sso)."),
    url: str = typer.Option("http://127.0.0.1:8000", envvar="TAILOR_URL", help="API URL."),
) -> None:
    """Sign in for later commands: with an API token, or with --sso through the identity
    provider (a session that refreshes itself, ended by `tailor logout`)."""
    url = url.rstrip("/")
    if sso:
        # Plain echo: rich would wrap the URL at the terminal's width, breaking it in two.
        session = device_sign_in(Client(url, token=""), typer.echo)
        path = save_config(url, session["access_token"], session["refresh_token"])
        console.print(f"signed in as {session['email']}; session saved to {path}")
        return
    token = token or typer.prompt("Token", hide_input=True)
    Client(url, token).get("/v1/teams")
    console.print(f"logged in; saved to {save_config(url, token)}")


def logout() -> None:
    """Forget the saved token; a single sign-on session is ended at the server too."""
    saved = forget_config()
    if saved.get("refresh_token"):
        try:
            Client(saved["url"], token="").post(
                "/v1/auth/sign-out", {"refresh_token": saved["refresh_token"]}
            )
        except ApiError as exc:
            if exc.status != 401:  # 401: it had ended already
                raise
    console.print("signed out" if saved else "was not signed in")


def register(app: typer.Typer, api_errors: Callable[[Any], Any]) -> None:
    """Attach these commands to the root app."""
    app.add_typer(db_app, name="db")
    app.command("up")(up)
    app.command("serve")(serve)
    app.command("serve-endpoint")(serve_endpoint)
    app.command("login")(api_errors(login))
    app.command("logout")(api_errors(logout))
