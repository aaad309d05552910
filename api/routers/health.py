"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import SettingsDep
from tailor.db.session import READ_ONLY
from tailor.errors import NotFound
from tailor.security import may_scrape

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Health status."""

    status: str


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(request: Request, response: Response) -> Health:
    """The database answers; until then the API should not get traffic."""
    try:
        with request.app.state.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True}).execute(text("SELECT 1"))
    except Exception:
        response.status_code = 503
        return Health(status="database unavailable")
    return Health(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        404: {"description": "Not the metrics token's bearer, nor a caller on this machine."},
    },
)
def metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus metrics of this API process (see `tailor.security.may_scrape`)."""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if not may_scrape(request.headers, request.client.host if request.client else None, token):
        raise NotFound("/metrics not found")
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
