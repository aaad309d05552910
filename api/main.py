"""The API application factory."""

from __future__ import annotations

import httpx
from fastapi import Depends, FastAPI
from sqlalchemy import Engine

from api import console, metrics, problems
from api.deps import reject_nul_characters
from api.routers import (
    adapters,
    auth,
    base_models,
    costs,
    datasets,
    endpoints,
    evaluations,
    finetunes,
    group_mappings,
    health,
    internal,
    jobs,
    members,
    repositories,
    teams,
    telemetry,
    tokens,
)
from tailor import __version__
from tailor.config import Settings, get_settings
from tailor.db.session import engine_for, session_factory
from tailor.queue import make_sender
from tailor.services.identity.oidc import OidcClient
from tailor.storage import ObjectStore, get_store


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    store: ObjectStore | None = None,
) -> FastAPI:
    """Build the API with its settings, database engine and object store passed in."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Tailor API",
        version=__version__,
        description="Register repositories, build datasets, fine-tune, evaluate and publish "
        "per-team code assistants. Errors are RFC 9457 problem+json. Text must not contain "
        "NUL characters (refused with 422).",
        dependencies=[Depends(reject_nul_characters)],
    )
    app.state.settings = settings
    app.state.engine = engine or engine_for(settings.database_url)
    app.state.sessionmaker = session_factory(app.state.engine)
    app.state.store = store or get_store(settings)
    app.state.sender = make_sender(settings)
    app.state.metrics = metrics.ApiMetrics()
    if settings.oidc_issuer:
        # Discovery and keys are fetched at first use: the API starts while the provider is down.
        http = httpx.Client(timeout=settings.oidc_timeout_s)
        app.state.oidc = OidcClient(settings, http)
    problems.install(app)
    metrics.install(app, app.state.metrics)
    for module in (
        health,
        teams,
        members,
        tokens,
        repositories,
        datasets,
        jobs,
        finetunes,
        evaluations,
        adapters,
        endpoints,
        internal,
        base_models,
        auth,
        group_mappings,
        telemetry,
        costs,
    ):
        app.include_router(module.router)
    app.include_router(console.router)
    return app
