"""Snippets placed as comments, for families without repository-level tokens (Tabby's layout:
a `Path:` line, then the code, each line behind the language's line comment)."""

from __future__ import annotations

from tailor.stages.context.snippets import ContextFile

_HASH = (".py", ".pyi", ".rb", ".sh", ".bash", ".r", ".pl", ".yaml", ".yml", ".toml", ".jl", ".ex")
_DASH = (".sql", ".lua", ".hs", ".adb", ".ads")


def line_comment(path: str | None) -> str:
    """The line comment of a file by its extension (`//` unless known otherwise)."""
    lower = (path or "").lower()
    if lower.endswith(_HASH) or lower.rsplit("/", 1)[-1] in {"dockerfile", "makefile"}:
        return "#"
    if lower.endswith(_DASH):
        return "--"
    return "//"


def as_comment(snippet: ContextFile, current_path: str | None) -> str:
    """One snippet as comment lines ending in a newline, in the comment of the file being edited."""
    comment = line_comment(current_path or snippet.path)
    lines = [f"Path: {snippet.path}", *snippet.body.splitlines()]
    return "".join(f"{comment} {line}\n" if line else f"{comment}\n" for line in lines)
