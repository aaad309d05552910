"""The serving app: OpenAI-, TGI-, Tabby- and Ollama-compatible endpoints over a backend,
per-team tokens.

Who a token belongs to and which adapter a model name means are the caller's business
(a `Lookup`: the DB in `tailor up`, dictionaries in tests); the app knows HTTP, limits and
metrics, and nothing of the database. Its routes are in `tailor.stages.serve.routers` (one module
per protocol) over the core: `deps` (state, token), `admission` (model, limits) and
`inflight` (a request from submit to close).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tailor.stages.context.store import TeamIndexes
from tailor.stages.serve.callers import Lookup
from tailor.stages.serve.deps import (
    ListModels,
    ServingBackend,
    ServingState,
    bearer_token,
    caller,
    get_serving,
)
from tailor.stages.serve.errors import ServeError, openai_error_body, tgi_error_body
from tailor.stages.serve.metrics import ServingMetrics
from tailor.stages.serve.routers import ollama, openai, probes, tabby, tgi
from tailor.stages.serve.spec import EndpointLimits
from tailor.telemetry.recorder import Recorder


def create_serving_app(
    backend: ServingBackend,
    *,
    lookup: Lookup,
    list_models: ListModels | None = None,
    limits: EndpointLimits | Callable[[str], EndpointLimits] | None = None,
    metrics: ServingMetrics | None = None,
    base_name: str = "base",
    drain_timeout_s: float = 30.0,
    stream_interval_s: float = 0.02,
    resources: Sequence[contextlib.AbstractContextManager[object]] = (),
    telemetry: Recorder | None = None,
    contexts: TeamIndexes | None = None,
    metrics_token: str | None = None,
) -> FastAPI:
    """The FastAPI app serving one backend to many teams.

    `lookup(token, model)` gives the caller's team and the backend's adapter key for one of
    that team's models, once per request. `<base>`, `base_name` and its last part
    lower-cased (the id `/v1/models` lists it under) always mean the base model. A stream's
    chunks between its first and last go out at most once per `stream_interval_s` (merged),
    so that streaming costs the decoding thread little; 0 sends
    every chunk as it comes. `resources` are entered when the app starts and left when it
    has stopped (the gateway's cache listener). `telemetry` records the completions served
    and their editor events (started and stopped with the app). `contexts` are the teams' code
    indexes, for endpoints whose caller has a repository-context budget. `metrics_token` is
    the bearer /metrics asks for (None: only callers on this machine may read it).
    """
    fixed = limits or EndpointLimits.model_validate({})
    state = ServingState(
        backend=backend,
        lookup=lookup,
        list_models=list_models or (lambda team: []),
        limits_for=fixed if callable(fixed) else (lambda team: fixed),
        metrics=metrics or ServingMetrics(),
        base_name=base_name,
        stream_interval_s=stream_interval_s,
        telemetry=telemetry,
        contexts=contexts,
        metrics_token=metrics_token,
    )
    if telemetry is not None:
        resources = [*resources, telemetry]
    backend.add_listener(state.metrics.adapter_event)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with contextlib.ExitStack() as held:
            for resource in resources:
                held.enter_context(resource)
            backend.start()  # loads the base model in the background; /readyz tells when
            yield
            # uvicorn has stopped accepting; let the streams still running finish.
            deadline = time.monotonic() + drain_timeout_s
            while state.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

    app = FastAPI(title="Tailor serving", lifespan=lifespan)
    app.state.serving = state
    app.exception_handler(ServeError)(_refused)
    app.exception_handler(RequestValidationError)(_invalid)
    for module in (probes, openai, tgi, tabby, ollama):
        app.include_router(module.router)
    return app


# -- errors, in the shape of the protocol the caller speaks --------------------------------------


async def _refused(request: Request, exc: ServeError) -> JSONResponse:
    return _error_response(request, exc)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    try:  # a caller who may not call learns nothing of the request, not even its faults
        await caller(await get_serving(request), await bearer_token(request), None)
    except ServeError as refused:
        return _error_response(request, refused)
    return _error_response(request, _validation_error(exc))


# Paths whose clients read OpenAI's error shape; TGI's and Ollama's read `{"error": "..."}`.
_OPENAI_SHAPED = ("/v1/", "/v1beta/", "/tabby/")


def _error_response(request: Request, err: ServeError) -> JSONResponse:
    openai_path = request.url.path.startswith(_OPENAI_SHAPED)
    body = openai_error_body(err) if openai_path else tgi_error_body(err)
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def _validation_error(exc: RequestValidationError) -> ServeError:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = "; ".join(str(e.get("ctx", {}).get("error", e.get("msg"))) for e in errors)
        return ServeError(400, "invalid_json", f"the request body is not valid JSON: {detail}")
    parts = [f"{'.'.join(str(x) for x in e['loc'] if x != 'body')}: {e['msg']}" for e in errors]
    param = ".".join(str(x) for x in errors[0]["loc"] if x != "body") if errors else None
    return ServeError(422, "invalid_request", "; ".join(parts), param=param)
