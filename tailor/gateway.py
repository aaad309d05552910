"""The inference gateway: the serving app, with tokens and model names resolved in the DB."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, and_, bindparam, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings, get_settings
from tailor.db.base import utcnow
from tailor.db.models import AdapterVersion, ApiToken, Endpoint, Membership, Team
from tailor.db.notices import NotifiedCache
from tailor.db.session import READ_ONLY, engine_for, session_factory
from tailor.errors import TailorError
from tailor.security import endpoint_token, hash_token
from tailor.services.base_models.service import resolve_source
from tailor.services.tokens.service import check_usable, last_use_is_stale
from tailor.stages.serve.callers import Caller
from tailor.stages.serve.model_files import fetch_model
from tailor.storage import get_store

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
        AdapterVersion.id.label("version_id"),
        AdapterVersion.created_at.label("version_created_at"),
        AdapterVersion.prefix,
        Team.id.label("team_id"),
        ApiToken.user_id,
        Team.telemetry_keeps_code,
        Endpoint.name.label("endpoint"),
        Endpoint.backend,
        Endpoint.backend_url,
        AdapterVersion.base_model,
        Endpoint.context_enabled,
        Endpoint.context_tokens,
    )
    .join(Team, Team.id == ApiToken.team_id)
    # A member who left the team keeps their tokens but not the team's models (as in the API).
    .join(Membership, and_(Membership.team_id == Team.id, Membership.user_id == ApiToken.user_id))
    .outerjoin(Endpoint, and_(Endpoint.team_id == Team.id, Endpoint.name == bindparam("model")))
    .outerjoin(AdapterVersion, AdapterVersion.id == Endpoint.version_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)
_RECORD_USE = (
    update(ApiToken)
    .where(ApiToken.id == bindparam("token_id"))
    .values(last_used_at=bindparam("used_at"))
)
_MODELS = (
    select(Endpoint.name).join(Team).where(Team.slug == bindparam("team")).order_by(Endpoint.name)
)


@dataclass(frozen=True)
class _Grant:
    """What the database says of one (token, model name): the caller query's row."""

    token_id: int
    scopes: list[str]
    revoked_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None
    team: str
    version_id: int | None
    version_created_at: datetime | None
    prefix: str | None
    team_id: int
    user_id: int
    keeps_code: bool
    endpoint: str | None
    backend: str | None
    backend_url: str | None
    base_model: str | None
    context_enabled: bool | None  # the endpoint's (None: no endpoint by that name)
    context_tokens: int | None


# Keyed by (token hash, model name): the plaintext token is never held.
GrantCache = NotifiedCache[tuple[str, str | None], _Grant]


def _adapter_key(grant: _Grant) -> str:
    """The version's store prefix, tagged so that no later version under it is taken for it.

    A team deleted and re-created under its slug stores versions under the same prefixes,
    and SQLite may hand the deleted row's id out again: id and creation time together are
    never reused (see `lora_cache.store_prefix`).
    """
    assert grant.prefix is not None and grant.version_created_at is not None
    created = int(grant.version_created_at.timestamp() * 1_000_000)
    return f"{grant.prefix.rstrip('/')}@{grant.version_id}.{created}"


class Routing:
    """Who may call, and which adapter a team's model name means.

    Reads and writes come in separate transactions: on SQLite a read-only one takes no write
    lock, so completions neither wait for the API's and workers' writes nor hold them up. With
    a `cache` (PostgreSQL), answers are kept until the database announces a change to a token,
    membership, team, endpoint or version (migration 0004), so a revocation or a promotion
    holds within milliseconds of its commit; without one, from the very next request.
    """

    def __init__(
        self, read: Transaction, write: Transaction, cache: GrantCache | None = None
    ) -> None:
        self.read, self.write, self.cache = read, write, cache

    @classmethod
    def on(cls, engine: Engine, cache: GrantCache | None = None) -> Routing:
        """Routing over `engine`'s connections."""
        return cls(engine.execution_options(**{READ_ONLY: True}).begin, engine.begin, cache)

    def lookup(self, token: str, model: str | None) -> Caller | None:
        """The team of a team-bound `inference` token (else None: 401) and the store prefix of
        the version its endpoint `model` serves.

        Expiry and revocation are checked on every call, cached or not.
        """
        now = utcnow()
        key = (hash_token(token), model)
        # Taken before reading: what is read is kept only if no change was announced since.
        generation = self.cache.generation if self.cache else 0
        grant = self._grant(key, generation)
        if grant is None or "inference" not in grant.scopes:
            return None
        try:
            check_usable(grant.revoked_at, grant.expires_at, now)
        except TailorError:
            return None
        if last_use_is_stale(grant.last_used_at, now):  # about once a minute per token
            with self.write() as conn:
                conn.execute(_RECORD_USE, {"token_id": grant.token_id, "used_at": now})
            # Last use is not announced (it would empty every gateway's cache): keep it here.
            self._keep(key, replace(grant, last_used_at=now), generation)
        who = Caller(
            grant.team,
            team_id=grant.team_id,
            member_id=grant.user_id,
            keeps_code=grant.keeps_code,
        )
        if model is None:
            return who
        if grant.prefix is None:
            return replace(who, known=False)
        context = (grant.context_tokens or 0) if grant.context_enabled else 0
        return replace(
            who,
            adapter=_adapter_key(grant),
            version_id=grant.version_id,
            endpoint=grant.endpoint,
            backend=grant.backend or "tailor",
            backend_url=grant.backend_url,
            base_model=grant.base_model,
            context_tokens=context,
        )

    def models(self, team: str) -> list[str]:
        """The model names (endpoints) the team can call."""
        with self.read() as conn:
            return list(conn.scalars(_MODELS, {"team": team}))

    def _grant(self, key: tuple[str, str | None], generation: int) -> _Grant | None:
        cached = self.cache.get(key) if self.cache else None
        if cached is not None:
            return cached
        with self.read() as conn:  # one query, since every IDE completion may come here
            row = conn.execute(_CALLER, {"token_hash": key[0], "model": key[1]}).first()
        if row is None:  # unknown tokens are not kept: guessing must not fill the cache
            return None
        grant = _Grant(*tuple(row))  # more columns than SQLAlchemy's typed rows name
        self._keep(key, grant, generation)
        return grant

    def _keep(self, key: tuple[str, str | None], grant: _Grant, generation: int) -> None:
        if self.cache:
            self.cache.put(key, grant, generation)


def teams_with_context(begin: Callable[[], AbstractContextManager[Connection]]) -> list[str]:
    """The teams with an endpoint that retrieves repository context (their indexes are loaded
    when the gateway starts)."""
    query = select(Team.slug).join(Endpoint).where(Endpoint.context_enabled).distinct()
    with begin() as conn:
        return sorted(conn.execute(query).scalars())


def routing_channel(database: Engine) -> str:
    """Where migration 0004's triggers announce a change to a token, membership, team, endpoint
    or version in the database's schema."""
    with database.connect() as conn:
        return f"tailor_routing_{conn.scalar(text('SELECT current_schema()'))}"


def catalog_loader(sessions: sessionmaker[Session]) -> Callable[[str], Path]:
    """Loads the gateway's base by its catalog name: only the source an admin registered."""

    def load(name: str) -> Path:
        source, _revision = resolve_source(sessions, name)
        return fetch_model(source)

    return load


class GatewayConfigError(ValueError):
    """The settings cannot make a gateway (named setting missing)."""


def cluster_problem(settings: Settings) -> str | None:
    """Why the gateway cannot route to endpoint pods with these settings (None: it can)."""
    if settings.executor == "kubernetes" and not settings.endpoint_token_key:
        return (
            "TAILOR_ENDPOINT_TOKEN_KEY is not set: in cluster mode the gateway calls each "
            "team's endpoint pods with a token derived from it (the operator's is the same)"
        )
    return None


def create_gateway(settings: Settings | None = None) -> FastAPI:
    """The gateway app (uvicorn factory: `tailor serve`): in cluster mode (executor
    `kubernetes`) it forwards to each endpoint's pods; else it serves the settings' base
    model and every team's adapters in this process."""
    settings = settings or get_settings()
    database = engine_for(settings.database_url)
    cache: GrantCache | None = None
    if settings.serve_lookup_cache_s and database.dialect.name == "postgresql":
        channel = routing_channel(database)
        cache = NotifiedCache(database, channel, max_age_s=settings.serve_lookup_cache_s)
    routing = Routing.on(database, cache)
    if settings.executor == "kubernetes":
        return _cluster_gateway(settings, routing, cache)
    return _embedded_gateway(settings, database, routing, cache)


def _cluster_gateway(settings: Settings, routing: Routing, cache: GrantCache | None) -> FastAPI:
    from tailor.stages.serve.proxy import create_proxy_app

    problem = cluster_problem(settings)
    if problem or settings.endpoint_token_key is None:
        raise GatewayConfigError(problem)
    key = settings.endpoint_token_key.get_secret_value()
    return create_proxy_app(
        lookup=routing.lookup,
        list_models=routing.models,
        token_for=lambda team: endpoint_token(key, team),
        base_name=settings.serve_base_model,
        timeout_s=settings.gateway_backend_timeout_s,
        path_prefix=settings.gateway_path_prefix,
        resources=[cache] if cache else [],
    )


def _embedded_gateway(
    settings: Settings, database: Engine, routing: Routing, cache: GrantCache | None
) -> FastAPI:
    from tailor.stages.context.store import TeamIndexes  # pyarrow: the worker image's
    from tailor.stages.serve.app import create_serving_app
    from tailor.stages.serve.engine import TailorEngine
    from tailor.stages.serve.spec import EndpointLimits

    # Here, not at the top: its redactor needs the worker's numpy, which the API image (the
    # cluster gateway's) lacks, and only the embedded gateway records completions.
    from tailor.telemetry.recorder import Recorder

    read_only = database.execution_options(**{READ_ONLY: True})
    telemetry = Recorder(
        read_only.begin, database.begin, interval_s=settings.telemetry_flush_interval_s
    )
    store = get_store(settings)
    contexts = TeamIndexes(store, refresh_s=settings.serve_context_refresh_s)
    contexts.preload(lambda: teams_with_context(read_only.begin))
    engine = TailorEngine(
        settings.serve_base_model,
        store,
        loader=catalog_loader(session_factory(database)),
        adapter_budget_bytes=settings.serve_adapter_budget_mb << 20,
        queue_timeout_s=settings.serve_queue_timeout_s,
        max_queued_per_team=settings.serve_max_queued_per_team,
    )
    limits = EndpointLimits(
        requests_per_minute=settings.serve_requests_per_minute,
        tokens_per_minute=settings.serve_tokens_per_minute,
    )
    return create_serving_app(
        engine,
        lookup=routing.lookup,
        list_models=routing.models,
        limits=limits,
        base_name=settings.serve_base_model,
        stream_interval_s=settings.serve_stream_interval_ms / 1000,
        resources=[cache] if cache else [],
        telemetry=telemetry,
        contexts=contexts,
        metrics_token=settings.metrics_token.get_secret_value() if settings.metrics_token else None,
    )
