"""The inference gateway: the serving app, with tokens and model names resolved in the DB."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, and_, bindparam, select, update

from tailor.config import Settings, get_settings
from tailor.db.base import utcnow
from tailor.db.models import AdapterVersion, ApiToken, Endpoint, Team
from tailor.db.session import READ_ONLY, engine_for
from tailor.errors import TailorError
from tailor.security import hash_token
from tailor.serve.callers import Caller
from tailor.storage import get_store
from tailor.tokens.service import check_usable, last_use_is_stale

if TYPE_CHECKING:
    from fastapi import FastAPI

# A transaction on a connection: `engine.begin` (a savepoint of the test's own in tests).
Transaction = Callable[[], AbstractContextManager[Connection]]

# Built once: the gateway runs it for every completion, and building a statement costs
# more than a local round trip.
_CALLER = (
    select(
        ApiToken.id,
        ApiToken.scopes,
        ApiToken.revoked_at,
        ApiToken.expires_at,
        ApiToken.last_used_at,
        Team.slug,
        AdapterVersion.prefix,
    )
    .join(Team, Team.id == ApiToken.team_id)
    .outerjoin(Endpoint, and_(Endpoint.team_id == Team.id, Endpoint.name == bindparam("model")))
    .outerjoin(AdapterVersion, AdapterVersion.id == Endpoint.version_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)
_MODELS = (
    select(Endpoint.name).join(Team).where(Team.slug == bindparam("team")).order_by(Endpoint.name)
)


class Routing:
    """Who may call, and which adapter a team's model name means — read fresh per request.

    Reads and writes come in separate transactions: on SQLite a read-only one takes no write
    lock, so completions neither wait for the API's and workers' writes nor hold them up.
    """

    def __init__(self, read: Transaction, write: Transaction) -> None:
        self.read, self.write = read, write

    @classmethod
    def on(cls, engine: Engine) -> Routing:
        """Routing over `engine`'s connections."""
        return cls(engine.execution_options(**{READ_ONLY: True}).begin, engine.begin)

    def lookup(self, token: str, model: str | None) -> Caller | None:
        """The team of a team-bound `inference` token (else None: 401) and the store prefix of
        the version its endpoint `model` serves.

        One query, since every IDE completion asks; nothing is cached, so a revocation or a
        promotion holds from the very next request.
        """
        now = utcnow()
        with self.read() as conn:
            params = {"token_hash": hash_token(token), "model": model}
            row = conn.execute(_CALLER, params).first()
        if row is None or "inference" not in row.scopes:
            return None
        try:
            check_usable(row.revoked_at, row.expires_at, now)
        except TailorError:
            return None
        if last_use_is_stale(row.last_used_at, now):  # about once a minute per token
            with self.write() as conn:
                conn.execute(update(ApiToken).where(ApiToken.id == row.id), {"last_used_at": now})
        if model is None:
            return Caller(row.slug)
        return (
            Caller(row.slug, row.prefix.rstrip("/"))
            if row.prefix
            else Caller(row.slug, known=False)
        )

    def models(self, team: str) -> list[str]:
        """The model names (endpoints) the team can call."""
        with self.read() as conn:
            return list(conn.scalars(_MODELS, {"team": team}))


def create_gateway(settings: Settings | None = None) -> FastAPI:
    """The serving app for the settings' base model (uvicorn factory: `tailor serve`)."""
    from tailor.serve.app import create_serving_app
    from tailor.serve.engine import TailorEngine

    settings = settings or get_settings()
    routing = Routing.on(engine_for(settings.database_url))
    engine = TailorEngine(
        settings.serve_base_model,
        get_store(settings),
        adapter_budget_bytes=settings.serve_adapter_budget_mb << 20,
    )
    return create_serving_app(
        engine,
        lookup=routing.lookup,
        list_models=routing.models,
        stream_interval_s=settings.serve_stream_interval_ms / 1000,
    )
