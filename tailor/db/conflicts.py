"""Which refusals of the database are the request's conflict (409), not the server's fault."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from tailor.errors import Conflict

# (PostgreSQL SQLSTATE, start of SQLite's message, what to tell the caller)
_CONFLICTS = (
    (
        "23505",
        "UNIQUE constraint failed",
        "it already exists: an identical request was saved first; reload to see it",
    ),
    (
        "23503",
        "FOREIGN KEY constraint failed",
        "something it refers to was removed, or something still refers to it; reload and retry",
    ),
)


def conflict_from(exc: IntegrityError) -> Conflict | None:
    """The 409 for a unique or foreign-key violation; None for anything else (a bug: 500).

    The services look for duplicates first, but two identical requests can both pass that
    check before either commits: the database's constraint decides, and the loser is told
    of the conflict, not of an internal error. Constraint names and values are not echoed
    (they could describe another team's rows).
    """
    sqlstate = getattr(exc.orig, "sqlstate", None)
    message = str(exc.orig)
    for code, sqlite_message, what in _CONFLICTS:
        if sqlstate == code or message.startswith(sqlite_message):
            return Conflict(what)
    return None
