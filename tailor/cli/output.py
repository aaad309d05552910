"""Render results as rich tables for people or JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


class Output(StrEnum):
    """How a command prints its result."""

    table = "table"
    json = "json"


OutputOpt = typer.Option(Output.table, "--output", "-o", help="table for people, json for scripts")


def show(data: Any, output: Output, columns: Sequence[str] = ()) -> None:
    """Print one object or a list of objects."""
    if output == Output.json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    rows = data if isinstance(data, list) else [data]
    cols = list(columns) or (list(rows[0].keys()) if rows else [])
    table = Table(*cols, show_lines=False)
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in cols])
    console.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)
