"""OpenAPI declarations of the problem responses routes can return."""

from __future__ import annotations

from typing import Any

from api.problems import MEDIA_TYPE, Problem


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the given problem statuses (401 and 422 always included)."""
    wanted = sorted({401, 422, *statuses})
    return {s: {"model": Problem, "content": {MEDIA_TYPE: {}}} for s in wanted}


READ = errors(403, 404)
WRITE = errors(403, 404, 409)
