"""`tailor base` (build the tiny base, list what to name) and `tailor admin base-model`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from tailor.cli.admin import admin_app
from tailor.cli.client import Client
from tailor.cli.output import Output, OutputOpt, err_console, show

base_app = typer.Typer(help="Base models: the platform's catalog.", no_args_is_help=True)
catalog_app = typer.Typer(
    help="The catalog of base models (platform admins).", no_args_is_help=True
)
CATALOG = "/v1/admin/base-models"
LISTED_COLS = ("name", "family", "description")
ADMIN_COLS = ("name", "source", "revision", "family", "created_at")


@base_app.command("build-tiny")
def build_tiny(
    out: Path = typer.Argument(Path(".tailor/models/tiny-starcoder")),
    recipe: str = typer.Option(
        "code",
        help="code: 4 layers, 256 wide, 3,000 steps on the stdlib and site-packages (minutes; "
        "knows some Python, so fine-tuning visibly helps); tiny: 2 layers, 300 steps on 200 "
        "stdlib files (seconds; proves plumbing only).",
    ),
    steps: int = typer.Option(None, help="Pre-training steps (default: the recipe's)."),
    seed: int = typer.Option(0),
    name: str = typer.Option("tiny-starcoder", help="Catalog name to register it under."),
    register: bool = typer.Option(
        True, "--register/--no-register", help="Register it in this machine's catalog."
    ),
    rebuild: bool = typer.Option(False, help="Build again although OUT holds the model."),
) -> None:
    """Build a small StarCoder-architecture model and FIM tokenizer offline, and register it.

    Builds are cached under the workspace's cache/bases, keyed by recipe, seed and corpus, so
    a second OUT with the same inputs is a copy. Registration writes this machine's database
    directly (the embedded default's bootstrap, like `tailor admin create-token`); on a
    cluster use `tailor admin base-model add`.
    """
    from tailor.demo.tiny import RECIPES

    if recipe not in RECIPES:
        err_console.print(f"[red]error[/red] --recipe must be one of {', '.join(RECIPES)}")
        raise typer.Exit(2)
    if rebuild or not (out / "config.json").is_file():
        _build(out, RECIPES[recipe].name, steps, seed)
    else:
        err_console.print(f"{out} holds a model already (--rebuild builds it again)")
    if register:
        _register_here(name, out)
    typer.echo(out)


def _build(out: Path, recipe: str, steps: int | None, seed: int) -> None:
    import json
    import shutil

    from tailor.config import get_settings
    from tailor.demo.tiny import RECIPES, tiny_base_cached

    cache = get_settings().ensure_workspace() / "cache" / "bases"
    built = tiny_base_cached(cache, recipe=RECIPES[recipe], steps=steps, seed=seed)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(built, out)
    info = json.loads((out / "tailor_tiny.json").read_text())
    err_console.print(
        f"built {recipe} base: {info['parameters']:,} parameters, {info['files']} files, "
        f"eval loss {info['eval_loss'] or float('nan'):.2f}, {info['build_s']} s"
    )


def _register_here(name: str, directory: Path) -> None:
    from tailor.config import get_settings
    from tailor.db import migrate
    from tailor.db.session import engine_for, session_factory
    from tailor.errors import TailorError
    from tailor.services.base_models.service import register_directory

    settings = get_settings()
    settings.ensure_workspace()
    migrate.upgrade(settings.database_url)
    with session_factory(engine_for(settings.database_url))() as session:
        try:
            register_directory(session, name, directory)
        except TailorError as exc:
            err_console.print(f"[red]error[/red] {exc.detail}")
            raise typer.Exit(1) from exc
        session.commit()
    err_console.print(f"registered base model {name} ({directory.resolve()})")


def list_names(output: Output = OutputOpt) -> None:
    """The base models a fine-tune, import or transfer may name."""
    show(Client().get("/v1/base-models"), output, LISTED_COLS)


def add(
    name: str = typer.Argument(..., help="What requests will name."),
    source: str = typer.Argument(
        ..., help="Hub id, s3://bucket/prefix, or an absolute directory on the workers."
    ),
    revision: str = typer.Option(None, help="Hub revision."),
    family: str = typer.Option("", help="Architecture (config.model_type), e.g. gpt_bigcode."),
    description: str = typer.Option(""),
    output: Output = OutputOpt,
) -> None:
    """Register a base model in the platform's catalog."""
    body = {
        "name": name,
        "source": source,
        "revision": revision,
        "family": family,
        "description": description,
    }
    show(Client().post(CATALOG, body), output, ADMIN_COLS)


def list_catalog(output: Output = OutputOpt) -> None:
    """The catalog with each base's source."""
    show(Client().get(CATALOG), output, ADMIN_COLS)


def remove(name: str) -> None:
    """Remove a base model no adapter uses."""
    Client().delete(f"{CATALOG}/{name}")
    typer.echo(f"removed base model {name}")


def register(app: typer.Typer, api_errors: Callable[[Any], Any]) -> None:
    """Attach `tailor base` to the root app and `base-model` to `tailor admin`."""
    base_app.command("list")(api_errors(list_names))
    for cmd, fn in (("add", add), ("list", list_catalog), ("remove", remove)):
        catalog_app.command(cmd)(api_errors(fn))
    admin_app.add_typer(catalog_app, name="base-model")
    app.add_typer(base_app, name="base")
