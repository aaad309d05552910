"""A retrieved snippet as the prompt places it: free of the index's numpy, so the serving
protocol (and the cluster gateway's image, which has no numpy) can name it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ContextFile:
    """One retrieved snippet, as placed before the prompt: a path in a repository and its text."""

    repo: str
    path: str
    body: str
    score: float = 0.0
    kind: str = "chunk"  # "definition" or "chunk"
    symbol: str | None = None
    line: int = 1
