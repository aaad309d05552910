"""The gateway in cluster mode: authenticate as in process, then forward to the endpoint's pods.

Each published endpoint runs in its team's namespace (the operator's InferenceEndpoint); the
gateway is the only way in. It checks the caller's team token and model name with the same
`Lookup` as the in-process gateway (so a token of another team, a revoked one, an unknown
model answer exactly as they do there), then forwards the request to the endpoint's backend
URL with the team's endpoint token as bearer, and relays the answer byte for byte, streams
included (SSE passes through as it arrives). The model name is rewritten to the endpoint's own
name (the caller may have used an alias), the only name the backend knows.

Backends: the Tailor engine (`tailor serve-endpoint`) speaks every protocol the gateway does;
vLLM speaks OpenAI's and refuses `suffix`, so for it the FIM prompt is built here from the
base family's tokens (`tailor.fim`) and only the OpenAI routes are forwarded.

Answered here, not by a pod: the model lists (`/v1/models`, Ollama's `/api/tags`: the team's
endpoints) and OpenAI-side feedback, taken with `recorded: false` (no telemetry is kept in
cluster mode, and a completion id does not say which endpoint answered it). Tabby's health,
server setting and events name the endpoint in the path and go to its pods.

Nothing here knows Kubernetes: the URL comes with the lookup's answer and the endpoint token
from `token_for(team)`. One `httpx.AsyncClient` per app keeps connections to the pods alive.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from tailor.fim import fim_prompt, style_for_model
from tailor.stages.serve import ollama
from tailor.stages.serve.callers import Caller, Lookup, base_family, model_aliases
from tailor.stages.serve.deps import ListModels, bearer_token, unauthorized
from tailor.stages.serve.errors import (
    ServeError,
    model_not_found,
    openai_error_body,
    tgi_error_body,
)
from tailor.stages.serve.feedback import acknowledgement
from tailor.stages.serve.protocol import FeedbackRequest

log = logging.getLogger(__name__)

# The team's bearer token for its endpoint pods.
EndpointToken = Callable[[str], str]

# Headers that describe one hop, not the answer (RFC 9110 §7.6.1), and those the relay redoes.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
        "content-length",
        "server",
        "date",
    }
)
# What vLLM's OpenAI server answers (the rest is the Tailor engine's).
_OPENAI_ROUTES = ("/v1/completions", "/v1/chat/completions")
_OPENAI_SHAPED = ("/v1/", "/v1beta/", "/tabby/")


@dataclass
class Proxy:
    """One gateway's lookup, endpoint tokens and its connection pool to the pods."""

    lookup: Lookup
    list_models: ListModels
    token_for: EndpointToken
    family: str
    client: httpx.AsyncClient | None = None

    async def resolve(self, token: str, model: str) -> Caller:
        """The caller's endpoint `model` (or an alias of it); 401 for a token that may not call,
        404 for a model the team does not have (another team's looks the same)."""
        for alias in model_aliases(model, self.family):
            found = await run_in_threadpool(self.lookup, token, alias)
            if found is None:
                raise unauthorized()
            if found.known and found.endpoint is not None:
                return found
        raise model_not_found(model)

    async def forward(
        self, request: Request, path: str, body: dict[str, Any] | None, who: Caller
    ) -> Any:
        """POST `body` (GET when None) to `path` on the caller's endpoint pods; relay the
        answer as it comes."""
        if who.backend_url is None:
            raise ServeError(
                503,
                "endpoint_not_ready",
                f"the endpoint {who.endpoint!r} is starting; retry shortly",
                headers={"Retry-After": "10"},
            )
        assert self.client is not None, "the app's lifespan opens the client"
        headers = {
            "authorization": f"Bearer {self.token_for(who.team)}",
            "accept": request.headers.get("accept", "*/*"),
            # Relayed byte for byte: the caller never asked for a compressed answer.
            "accept-encoding": "identity",
        }
        url = who.backend_url.rstrip("/") + path
        if body is None:
            upstream = self.client.build_request("GET", url, headers=headers)
        else:
            headers["content-type"] = "application/json"
            content = json.dumps(body)
            upstream = self.client.build_request("POST", url, content=content, headers=headers)
        try:
            answer = await self.client.send(upstream, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            log.warning("endpoint %s/%s unreachable: %s", who.team, who.endpoint, exc)
            raise ServeError(
                503,
                "endpoint_unavailable",
                f"the endpoint {who.endpoint!r} has no pod ready to answer; retry shortly",
                headers={"Retry-After": "5"},
            ) from exc
        except httpx.HTTPError as exc:
            log.warning("endpoint %s/%s failed: %s", who.team, who.endpoint, exc)
            raise ServeError(502, "bad_gateway", "the endpoint did not answer") from exc
        if answer.status_code in (401, 403):
            # The pod refused the gateway (a key out of step): not the caller's token's fault.
            await answer.aclose()
            log.error("endpoint %s/%s refused the gateway's token", who.team, who.endpoint)
            raise ServeError(502, "bad_gateway", "the endpoint refused the gateway")
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
        return StreamingResponse(_relay(answer), status_code=answer.status_code, headers=kept)


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    """The answer's bytes as they arrive; closing (the caller left) closes the upstream too,
    which is how the backend learns to stop generating."""
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()


def openai_body_for_vllm(body: dict[str, Any], base_model: str | None) -> dict[str, Any]:
    """A completion body vLLM accepts: a `suffix` becomes the base family's FIM prompt, and
    the FIM tokens stop generation."""
    if "suffix" not in body:
        return body
    suffix = body.get("suffix") or ""
    prompt = body.get("prompt", "")
    style = style_for_model(base_model or "")
    if not isinstance(prompt, str) or not isinstance(suffix, str):
        raise ServeError(400, "invalid_request", "with `suffix`, `prompt` must be one string")
    if style is None:
        raise ServeError(
            400,
            "fim_unsupported",
            f"the base model {base_model!r} has no known fill-in-the-middle tokens; "
            "send the prompt without `suffix`",
            param="suffix",
        )
    out = {k: v for k, v in body.items() if k != "suffix"}
    out["prompt"] = fim_prompt(style, prompt, suffix)
    stop = out.get("stop") or []
    stop = [stop] if isinstance(stop, str) else list(stop)
    out["stop"] = [*stop, *(t for t in (style.prefix, style.suffix, style.middle) if t not in stop)]
    return out


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise ServeError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ServeError(400, "invalid_json", "the request body must be a JSON object")
    return body


def _error_response(request: Request, err: ServeError) -> JSONResponse:
    openai_path = request.url.path.startswith(_OPENAI_SHAPED)
    body = openai_error_body(err) if openai_path else tgi_error_body(err)
    return JSONResponse(body, status_code=err.status, headers=err.headers)


class StripPrefix:
    """ASGI middleware: serve the app under `prefix` as well (an ingress path shared with the
    API's host, e.g. `/gateway`), the kubelet's probes still at the root."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app, self.prefix = app, prefix.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and self.prefix and path.startswith(self.prefix + "/"):
            scope = {k: v for k, v in scope.items() if k != "raw_path"}
            scope["path"] = path[len(self.prefix) :]
        await self.app(scope, receive, send)


def create_proxy_app(
    *,
    lookup: Lookup,
    list_models: ListModels,
    token_for: EndpointToken,
    base_name: str,
    timeout_s: float = 300.0,
    path_prefix: str = "",
    resources: Sequence[contextlib.AbstractContextManager[object]] = (),
) -> FastAPI:
    """The gateway app of cluster mode: every team's endpoints, each served by its own pods.

    `timeout_s` bounds the wait for a backend's next bytes (a whole answer, or a stream's gap).
    `path_prefix` serves every route under it too (`/gateway/v1/completions`). `resources`
    are entered while the app runs (the lookup cache's listener).
    """
    proxy = Proxy(lookup, list_models, token_for, base_family(base_name))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(timeout_s, connect=5.0)
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)
        with contextlib.ExitStack() as held:
            for resource in resources:
                held.enter_context(resource)
            async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
                proxy.client = client
                yield

    app = FastAPI(title="Tailor gateway (cluster)", lifespan=lifespan)
    app.state.proxy = proxy
    if path_prefix.strip("/"):
        app.add_middleware(StripPrefix, prefix="/" + path_prefix.strip("/"))

    @app.exception_handler(ServeError)
    async def refused(request: Request, exc: ServeError) -> JSONResponse:
        return _error_response(request, exc)

    @app.get("/healthz")
    @app.get("/readyz")
    async def probe() -> dict[str, str]:
        """Alive and ready: the gateway loads no model (its pods' readiness is theirs)."""
        return {"status": "ok"}

    async def team_of(request: Request) -> str:
        """The caller's team; 401 for a token that may not call."""
        found = await run_in_threadpool(lookup, await bearer_token(request), None)
        if found is None:
            raise unauthorized()
        return found.team

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        """The caller's team's endpoints."""
        team = await team_of(request)
        names = await run_in_threadpool(list_models, team)
        data = [{"id": n, "object": "model", "created": 0, "owned_by": team} for n in names]
        return {"object": "list", "data": data}

    async def by_body(request: Request) -> Response:
        """OpenAI and Ollama: the model is named in the body."""
        token = await bearer_token(request)
        body = await _json_body(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ServeError(422, "invalid_request", "model: field required", param="model")
        who = await proxy.resolve(token, model)
        path = request.url.path
        if who.backend != "tailor":
            if path not in _OPENAI_ROUTES:
                raise _openai_only(who)
            if path == "/v1/completions":
                body = openai_body_for_vllm(body, who.base_model)
        result: Response = await proxy.forward(request, path, {**body, "model": who.endpoint}, who)
        return result

    async def by_path(request: Request) -> Response:
        """TGI and Tabby: the model is a path segment; a GET (Tabby's health) has no body."""
        token = await bearer_token(request)
        body = await _json_body(request) if request.method == "POST" else None
        model = request.path_params["model"]
        who = await proxy.resolve(token, model)
        if who.backend != "tailor":
            raise _openai_only(who)
        prefix, _, rest = request.url.path.lstrip("/").partition("/")
        rest = rest.partition("/")[2]  # what follows the model's segment
        path = f"/{prefix}/{who.endpoint}" + (f"/{rest}" if rest else "")
        result: Response = await proxy.forward(request, path, body, who)
        return result

    @app.post("/api/show", response_model=None)
    async def show(request: Request) -> Response:
        """Ollama's model card (Continue asks at start): the model is `model` or `name`."""
        token = await bearer_token(request)
        name = _show_name(await _json_body(request))
        who = await proxy.resolve(token, name)
        if who.backend != "tailor":
            raise _openai_only(who)
        result: Response = await proxy.forward(request, "/api/show", {"model": who.endpoint}, who)
        return result

    @app.get("/api/tags")
    async def tags(request: Request) -> dict[str, Any]:
        """Ollama's model list: the caller's team's endpoints."""
        names = await run_in_threadpool(list_models, await team_of(request))
        return {"models": [ollama.tag(n, proxy.family) for n in names]}

    @app.post("/v1/completions/{completion_id}/feedback")
    async def completion_feedback(
        completion_id: Annotated[str, Path(max_length=64)], body: FeedbackRequest, request: Request
    ) -> dict[str, Any]:
        """Taken, not recorded: the gateway keeps no telemetry in cluster mode, and an id does
        not say which endpoint's pods answered it."""
        await team_of(request)
        return acknowledgement(completion_id, body.event, recorded=False)

    for path in (*_OPENAI_ROUTES, "/api/generate"):
        app.add_api_route(path, by_body, methods=["POST"], response_model=None)
    for path in (
        "/tgi/{model}",
        "/tgi/{model}/generate",
        "/tgi/{model}/generate_stream",
        "/tabby/{model}/v1/completions",
        "/tabby/{model}/v1/events",
    ):
        app.add_api_route(path, by_path, methods=["POST"], response_model=None)
    for path in ("/tabby/{model}/v1/health", "/tabby/{model}/v1beta/server_setting"):
        app.add_api_route(path, by_path, methods=["GET"], response_model=None)
    return app


def _show_name(body: dict[str, Any]) -> str:
    """The model an Ollama `/api/show` body asks about; 400 when it names none."""
    try:
        name = ollama.ShowRequest.model_validate(body).model_name()
    except ValidationError:
        name = None
    if name is None:
        raise ServeError(400, "invalid_request", "send the model's name in `model`", param="model")
    return name


def _openai_only(who: Caller) -> ServeError:
    return ServeError(
        400,
        "unsupported_protocol",
        f"the endpoint {who.endpoint!r} runs on vLLM, which speaks OpenAI's API only: "
        "use /v1/completions or /v1/chat/completions",
    )
