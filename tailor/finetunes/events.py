"""The line protocol between `tailor train run` and whoever launched it: one JSON object a line."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

EXIT_SPEC_ERROR = 3  # the spec can never work: do not retry (the operator's podFailurePolicy too)


def emit(event: str, stream: TextIO | None = None, **fields: Any) -> None:
    """Write one event line (`metrics`, `log`, `progress`, `result`, `error`) and flush it."""
    out = stream or sys.stdout
    out.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    out.flush()


def parse(line: str) -> dict[str, Any] | None:
    """An event from a line, or None for anything else the process printed."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "event" in obj else None
