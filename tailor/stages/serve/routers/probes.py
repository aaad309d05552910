"""Liveness, readiness (the base model has loaded) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tailor.security import may_scrape
from tailor.stages.serve.deps import ServingDep
from tailor.stages.serve.errors import ServeError

router = APIRouter(tags=["probes"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: ServingDep) -> JSONResponse:
    """503 until the backend can generate."""
    ready = state.backend.is_ready()
    body = {"status": "ready" if ready else "loading"}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(request: Request, state: ServingDep) -> Response:
    """The serving metrics in Prometheus' text format (see `tailor.security.may_scrape`)."""
    client = request.client.host if request.client else None
    if not may_scrape(request.headers, client, state.metrics_token):
        raise ServeError(404, "not_found", "/metrics not found")
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
