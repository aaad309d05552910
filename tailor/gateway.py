"""The inference gateway: the serving app, with tokens and model names resolved in the DB."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings, get_settings
from tailor.db.models import Endpoint, Team
from tailor.db.session import engine_for, session_factory
from tailor.errors import TailorError
from tailor.registry.service import resolve_served
from tailor.storage import get_store
from tailor.tokens.service import authenticate as authenticate_token

if TYPE_CHECKING:
    from fastapi import FastAPI


class Routing:
    """Who may call, and which adapter a team's model name means — read fresh per request."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def authenticate(self, token: str) -> str | None:
        """The team of a team-bound token with the `inference` scope, else None (401)."""
        with self.sessions.begin() as session:
            try:
                principal = authenticate_token(session, token)
            except TailorError:
                return None
            if principal.token_team_id is None or "inference" not in principal.scopes:
                return None
            return session.get_one(Team, principal.token_team_id).slug

    def resolve(self, team: str, model: str) -> str | None:
        """The store prefix of the version the team's endpoint `model` serves (promotion is
        visible on the very next request: nothing is cached)."""
        with self.sessions() as session:
            team_id = session.scalar(select(Team.id).where(Team.slug == team))
            version = resolve_served(session, team_id, model) if team_id else None
            return version.prefix.rstrip("/") if version else None

    def models(self, team: str) -> list[str]:
        """The model names (endpoints) the team can call."""
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(Endpoint.name)
                    .join(Team)
                    .where(Team.slug == team)
                    .order_by(Endpoint.name)
                )
            )


def create_gateway(settings: Settings | None = None) -> FastAPI:
    """The serving app for the settings' base model (uvicorn factory: `tailor serve`)."""
    from tailor.serve.app import create_serving_app
    from tailor.serve.engine import TailorEngine

    settings = settings or get_settings()
    routing = Routing(session_factory(engine_for(settings.database_url)))
    engine = TailorEngine(
        settings.serve_base_model,
        get_store(settings),
        adapter_budget_bytes=settings.serve_adapter_budget_mb << 20,
    )
    return create_serving_app(
        engine,
        authenticate=routing.authenticate,
        resolve_model=routing.resolve,
        list_models=routing.models,
        stream_interval_s=settings.serve_stream_interval_ms / 1000,
    )
