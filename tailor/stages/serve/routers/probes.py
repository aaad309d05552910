"""Liveness, readiness (the base model has loaded) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tailor.stages.serve.deps import ServingDep

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
async def metrics(state: ServingDep) -> Response:
    """The serving metrics in Prometheus' text format."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
