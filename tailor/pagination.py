"""Cursor pagination over integer primary keys: stable under inserts and deletes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import Session

from tailor.errors import InvalidInput

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
CURSOR_PATTERN = r"^[0-9]{1,18}$"
# Primary keys are 32-bit on PostgreSQL; a cursor past the largest one simply ends the list.
_MAX_ID = 2**31 - 1


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(last_id: int) -> str:
    """The cursor of the page after the row `last_id`."""
    return str(last_id)


def decode_cursor(cursor: str) -> int:
    """The id a cursor points after; a clear error for anything else."""
    if not cursor.isdigit() or len(cursor) > 18:
        raise InvalidInput("invalid cursor: pass the next_cursor of a previous page")
    return min(int(cursor), _MAX_ID)


def paginate(
    session: Session, stmt: Select[Any], id_column: Any, cursor: str | None, limit: int
) -> tuple[Sequence[Any], str | None]:
    """Rows of `stmt` after `cursor` in id order, and the cursor of the next page."""
    if cursor:
        stmt = stmt.where(id_column > decode_cursor(cursor))
    rows = session.scalars(stmt.order_by(id_column).limit(limit + 1)).all()
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1].id)
    return rows, None
