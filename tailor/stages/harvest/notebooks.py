"""Jupyter notebooks contribute their code cells only: outputs and prose are not code style."""

from __future__ import annotations

import json
from typing import Any


class NotebookError(ValueError):
    """The file is not a notebook Tailor can read; the message says what is wrong."""


def _source(cell: Any, where: str, key: str) -> str:
    src = cell.get(key, "") if isinstance(cell, dict) else None
    if isinstance(src, str):
        return src
    if isinstance(src, list) and all(isinstance(s, str) for s in src):
        return "".join(src)
    raise NotebookError(f"{where}: '{key}' is neither a string nor a list of strings")


def _cells(doc: dict[str, Any]) -> tuple[list[Any], str]:
    if isinstance(doc.get("cells"), list):  # nbformat 4
        return doc["cells"], "source"
    worksheets = doc.get("worksheets")  # nbformat 3
    if isinstance(worksheets, list) and all(isinstance(w, dict) for w in worksheets):
        cells = [c for w in worksheets for c in (w.get("cells") or [])]
        return cells, "input"
    raise NotebookError("no 'cells' list: not a Jupyter notebook (nbformat 3 or 4)")


def code_cells(text: str) -> str:
    """The code cells of a notebook, joined by blank lines; NotebookError if malformed."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(f"invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(doc, dict):
        raise NotebookError("top level is not a JSON object")
    cells, key = _cells(doc)
    parts = []
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise NotebookError(f"cell {i} is not an object")
        if cell.get("cell_type") == "code":
            src = _source(cell, f"cell {i}", key)
            if src.strip():
                parts.append(src.rstrip() + "\n")
    return "\n\n".join(parts)
