"""The serving app: OpenAI- and TGI-compatible endpoints over a backend, per-team tokens.

Who a token belongs to and which adapter a model name means are the caller's business
(a `Lookup`: the DB in `tailor up`, dictionaries in tests); this module knows HTTP, limits
and metrics, and nothing of the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from tailor.serve import protocol as p
from tailor.serve.callers import BASE_MODEL, Caller, Lookup
from tailor.serve.errors import (
    ServeError,
    model_not_found,
    openai_error_body,
    overloaded,
    tgi_error_body,
)
from tailor.serve.fim import FimError, split_fim_text
from tailor.serve.generation import (
    ChunkSink,
    Generation,
    GenerationChunk,
    GenerationRequest,
    OverloadedError,
    QueueTimeoutError,
    Ticket,
)
from tailor.serve.handoff import ChunkInbox
from tailor.serve.limits import (
    RateLimitedError,
    RateLimiter,
    Reservation,
    TooLargeError,
    retry_after_header,
)
from tailor.serve.lora_cache import AdapterNotFoundError
from tailor.serve.metrics import ServingMetrics
from tailor.serve.prompting import Prompter, PromptTooLongError
from tailor.serve.spec import EndpointLimits


class ServingBackend(Protocol):
    """What the app needs of a backend (TailorEngine, VLLMBackend)."""

    prompter: Prompter | None

    def start(self) -> Any: ...
    def is_ready(self) -> bool: ...
    def submit(
        self, request: GenerationRequest, sink: ChunkSink, *, prompt_ids: list[int] | None = None
    ) -> Ticket: ...
    def add_listener(self, listener: Callable[[str, str], None]) -> None: ...


ListModels = Callable[[str], list[str]]


@dataclass
class _Call:
    """One request in flight: who, which model, and its clock."""

    team: str
    model: str
    route: str
    limits: EndpointLimits
    started: float = field(default_factory=time.perf_counter)
    first_chunk: float | None = None

    @property
    def deadline(self) -> float:
        return self.started + self.limits.request_timeout_s


@dataclass
class _Serving:
    backend: ServingBackend
    lookup: Lookup
    list_models: ListModels
    limits_for: Callable[[str], EndpointLimits]
    metrics: ServingMetrics
    base_name: str
    stream_interval_s: float
    limiter: RateLimiter = field(default_factory=RateLimiter)
    in_flight: int = 0


def _is_tgi(path: str) -> bool:
    return not path.startswith("/v1/")


def _error_response(request: Request, err: ServeError) -> JSONResponse:
    body = tgi_error_body(err) if _is_tgi(request.url.path) else openai_error_body(err)
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def _validation_error(exc: RequestValidationError) -> ServeError:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = "; ".join(str(e.get("ctx", {}).get("error", e.get("msg"))) for e in errors)
        return ServeError(400, "invalid_json", f"the request body is not valid JSON: {detail}")
    parts = [f"{'.'.join(str(x) for x in e['loc'] if x != 'body')}: {e['msg']}" for e in errors]
    param = ".".join(str(x) for x in errors[0]["loc"] if x != "body") if errors else None
    return ServeError(422, "invalid_request", "; ".join(parts), param=param)


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
) -> FastAPI:
    """The FastAPI app serving one backend to many teams.

    `lookup(token, model)` gives the caller's team and the backend's adapter key for one of
    that team's models, once per request. `<base>` and `base_name` always mean the base
    model. A stream's chunks between its first and last go out at most once per
    `stream_interval_s` (merged), so that streaming costs the decoding thread little; 0 sends
    every chunk as it comes. `resources` are entered when the app starts and left when it
    has stopped (the gateway's cache listener).
    """
    fixed = limits or EndpointLimits.model_validate({})
    state = _Serving(
        backend=backend,
        lookup=lookup,
        list_models=list_models or (lambda team: []),
        limits_for=fixed if callable(fixed) else (lambda team: fixed),
        metrics=metrics or ServingMetrics(),
        base_name=base_name,
        stream_interval_s=stream_interval_s,
    )
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

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return _error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        try:  # a caller who may not call learns nothing of the request, not even its faults
            await _caller(state, await _token(request), None)
        except ServeError as refused:
            return _error_response(request, refused)
        return _error_response(request, _validation_error(exc))

    _add_probes(app, state)
    _add_openai_routes(app, state)
    _add_tgi_routes(app, state)
    return app


# -- probes -----------------------------------------------------------------------------------


def _add_probes(app: FastAPI, state: _Serving) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = state.backend.is_ready()
        body = {"status": "ready" if ready else "loading"}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# -- the request pipeline shared by every protocol ----------------------------------------------


def _unauthorized() -> ServeError:
    # A fresh error each time: a shared instance would grow its traceback with every raise.
    return ServeError(
        401,
        "invalid_api_key",
        "missing or invalid bearer token: send `Authorization: Bearer <team token>`",
    )


async def _token(request: Request) -> str:
    """The request's bearer token (checked by the lookup, with the model, in one call)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized()
    return token.strip()


async def _caller(state: _Serving, token: str, model: str | None) -> Caller:
    caller = await run_in_threadpool(state.lookup, token, model)
    if caller is None:
        raise _unauthorized()
    return caller


async def _begin(
    state: _Serving, token: str, model: str | None, route: str
) -> tuple[_Call, str | None]:
    """Authenticate and resolve the model; the call and the backend adapter key.

    Rate limits are taken later, once the request is known valid (`_Stream`): a request
    refused for what it asks costs nothing.
    """
    name = model or BASE_MODEL
    named = None if name in (BASE_MODEL, state.base_name) else name
    caller = await _caller(state, token, named)
    team = caller.team
    if not state.backend.is_ready():
        raise ServeError(
            503,
            "model_loading",
            "the base model is still loading; retry shortly",
            headers={"Retry-After": "5"},
        )
    if not caller.known:
        raise model_not_found(name)
    return _Call(team, name, route, state.limits_for(team)), caller.adapter


def _rate_limited(err: RateLimitedError) -> ServeError:
    return ServeError(
        429,
        "rate_limit_exceeded",
        f"{err}; retry in {err.retry_after_s:.1f}s",
        headers={"Retry-After": retry_after_header(err.retry_after_s)},
        members={"limit": err.limit, "limit_per_minute": err.per_minute},
    )


def _check_max_tokens(call: _Call, asked: int, param: str) -> None:
    if asked > call.limits.max_tokens:
        raise ServeError(
            400,
            "max_tokens_exceeded",
            f"{param}={asked} is over this endpoint's limit of {call.limits.max_tokens}",
            param=param,
        )


def _prompt_ids(state: _Serving, req: GenerationRequest) -> list[int]:
    """The request's prompt tokens (counted before anything is charged); 400 if it cannot run."""
    assert state.backend.prompter is not None
    try:
        return state.backend.prompter.check_fits(req)
    except PromptTooLongError as exc:
        raise ServeError(400, "context_length_exceeded", str(exc), param="prompt") from exc
    except FimError as exc:
        raise ServeError(400, "fim_unsupported", str(exc), param="suffix") from exc


def _reserve(state: _Serving, call: _Call, tokens: int) -> Reservation:
    limits = call.limits
    try:
        return state.limiter.reserve(
            call.team,
            requests_per_minute=limits.requests_per_minute,
            tokens_per_minute=limits.tokens_per_minute,
            tokens=tokens,
        )
    except TooLargeError as exc:
        raise ServeError(
            400, "request_too_large", str(exc), members={"limit": "tokens_per_minute"}
        ) from exc
    except RateLimitedError as exc:
        state.metrics.refused.labels(call.team, exc.limit).inc()
        raise _rate_limited(exc) from exc


class _Stream:
    """A submitted request whose chunks arrive on the event loop; it holds its rate-limit
    reservation until `close` settles it."""

    def __init__(
        self, state: _Serving, call: _Call, req: GenerationRequest, *, streaming: bool
    ) -> None:
        self.state, self.call, self.req = state, call, req
        interval = state.stream_interval_s if streaming else None
        self.inbox = ChunkInbox(asyncio.get_running_loop(), call.deadline, interval=interval)
        self.ready: deque[GenerationChunk | Exception] = deque()
        self.open = req.n
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.status = "200"
        self.refused = False  # the backend shed it before it started: it costs nothing
        ids = _prompt_ids(state, req)
        self.reservation = _reserve(state, call, len(ids) + req.n * req.max_new_tokens)
        try:
            self.ticket = state.backend.submit(req, self.inbox.put, prompt_ids=ids)
        except OverloadedError as exc:
            state.limiter.refund(self.reservation)
            state.metrics.refused.labels(call.team, "queue_full").inc()
            raise overloaded("overloaded", str(exc), retry_after_header(exc.retry_after_s)) from exc
        except BaseException:
            state.limiter.refund(self.reservation)
            raise
        state.in_flight += 1
        state.metrics.in_flight.inc()

    async def next(self) -> GenerationChunk | None:
        """The next chunk, None once every choice has finished; errors become ServeErrors."""
        if not self.open:
            return None
        if not self.ready:
            try:
                self.ready.extend(await self.inbox.take())
            except TimeoutError:
                raise self._timed_out() from None
        elif time.perf_counter() > self.call.deadline:
            raise self._timed_out()  # chunks keep coming, but the request's time is up
        item = self.ready.popleft()
        if isinstance(item, AdapterNotFoundError):
            raise model_not_found(self.call.model)
        if isinstance(item, QueueTimeoutError):
            self.refused = True
            self.state.metrics.refused.labels(self.call.team, "queue_timeout").inc()
            raise overloaded("queue_timeout", str(item), retry_after_header(item.retry_after_s))
        if isinstance(item, Exception):
            raise ServeError(500, "generation_failed", f"generation failed: {item}") from item
        if self.call.first_chunk is None:
            self.call.first_chunk = time.perf_counter()
        if item.finish_reason is not None:
            self.open -= 1
            self.prompt_tokens = item.prompt_tokens
            self.completion_tokens += item.completion_tokens
        return item

    def _timed_out(self) -> ServeError:
        self.ticket.cancel()
        return ServeError(
            504,
            "request_timeout",
            f"the request ran past this endpoint's {self.call.limits.request_timeout_s}s "
            "limit; ask for fewer tokens",
        )

    def has_ready(self) -> bool:
        """True when `next` would answer without waiting."""
        self.ready.extend(self.inbox.drain())
        return bool(self.ready) or not self.open

    async def collect(self) -> list[Generation]:
        """Every choice whole (the non-streaming answer)."""
        texts: list[list[str]] = [[] for _ in range(self.req.n)]
        logprobs: list[list[Any]] = [[] for _ in range(self.req.n)]
        ends: dict[int, GenerationChunk] = {}
        while (chunk := await self.next()) is not None:
            texts[chunk.index].append(chunk.text)
            logprobs[chunk.index].extend(chunk.logprobs)
            if chunk.finish_reason is not None:
                ends[chunk.index] = chunk
        return [
            Generation(
                text="".join(texts[i]),
                finish_reason=ends[i].finish_reason or "stop",
                completion_tokens=ends[i].completion_tokens,
                prompt_tokens=ends[i].prompt_tokens,
                logprobs=logprobs[i] or None,
            )
            for i in range(self.req.n)
        ]

    def close(self, error: ServeError | None = None) -> None:
        """Cancel what is still running, settle the rate limits, record the metrics."""
        self.inbox.close()
        if self.open:
            self.ticket.cancel()
        if self.refused:
            self.state.limiter.refund(self.reservation)
        else:
            self.state.limiter.settle(self.reservation, self.ticket.tokens_used())
        if error is not None:
            self.status = str(error.status)
        m, c = self.state.metrics, self.call
        labels = (c.team, c.model)
        m.requests.labels(*labels, c.route, self.status).inc()
        m.prompt_tokens.labels(*labels).inc(self.prompt_tokens)
        m.completion_tokens.labels(*labels).inc(self.completion_tokens)
        if c.first_chunk is not None:
            m.ttft.labels(*labels).observe(c.first_chunk - c.started)
        m.latency.labels(*labels).observe(time.perf_counter() - c.started)
        m.in_flight.dec()
        self.state.in_flight -= 1


async def _answer(stream: _Stream) -> list[Generation]:
    try:
        gens = await stream.collect()
    except ServeError as err:
        stream.close(err)
        raise
    stream.close()
    return gens


async def _first(stream: _Stream) -> GenerationChunk | None:
    """Wait for the first chunk before sending headers, so early errors keep their status."""
    try:
        return await stream.next()
    except ServeError as err:
        stream.close(err)
        raise


def _sse_response(stream: _Stream, body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        _coalesced(stream, body),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _coalesced(stream: _Stream, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """One write for the events of every chunk already here (a lagging loop catches up at once)."""
    parts: list[bytes] = []
    async for event in events:
        parts.append(event)
        if not stream.has_ready():
            yield b"".join(parts)
            parts.clear()
    if parts:
        yield b"".join(parts)


async def _chunks(stream: _Stream, first: GenerationChunk | None) -> AsyncIterator[GenerationChunk]:
    """All chunks of a stream, the already-awaited first one included; always closes it."""
    error: ServeError | None = None
    try:
        chunk = first
        while chunk is not None:
            yield chunk
            chunk = await stream.next()
    except ServeError as err:
        error = err
        raise
    finally:
        stream.close(error)


# -- OpenAI -----------------------------------------------------------------------------------


def _add_openai_routes(app: FastAPI, state: _Serving) -> None:
    @app.get("/v1/models")
    async def models(token: str = Depends(_token)) -> dict[str, Any]:
        team = (await _caller(state, token, None)).team
        names = await run_in_threadpool(state.list_models, team)
        data = [{"id": n, "object": "model", "created": 0, "owned_by": team} for n in names]
        data.append({"id": BASE_MODEL, "object": "model", "created": 0, "owned_by": "tailor"})
        return {"object": "list", "data": data}

    @app.post("/v1/completions", response_model=None)
    async def completions(
        body: p.CompletionRequest, token: str = Depends(_token)
    ) -> dict[str, Any] | StreamingResponse:
        call, key = await _begin(state, token, body.model, "completions")
        max_tokens = body.max_tokens or 16
        _check_max_tokens(call, max_tokens, "max_tokens")
        if body.echo:
            raise ServeError(400, "unsupported", "`echo` is not supported", param="echo")
        req = GenerationRequest(
            prompt=body.prompt_text(),
            suffix=body.suffix,
            adapter=key,
            max_new_tokens=max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            n=body.n,
            stop=p.stop_list(body.stop),
            seed=body.seed,
            single_line=body.single_line,
            stop_at_block_end=body.stop_at_block_end,
            logprobs=body.logprobs,
            ignore_eos=body.ignore_eos,
            team=call.team,
        )
        stream = _Stream(state, call, req, streaming=body.stream)
        rid, logprobs = p.new_id("cmpl"), body.logprobs is not None
        if not body.stream:
            return p.completion_body(rid, body.model, await _answer(stream), logprobs)
        first = await _first(stream)
        include_usage = bool((body.stream_options or {}).get("include_usage"))

        async def events() -> AsyncIterator[bytes]:
            async for chunk in _chunks(stream, first):
                yield p.sse(p.completion_chunk(rid, body.model, chunk, logprobs))
            if include_usage:
                yield p.sse(
                    p.usage_chunk(
                        rid,
                        body.model,
                        "text_completion",
                        stream.prompt_tokens,
                        stream.completion_tokens,
                    )
                )
            yield p.sse("[DONE]")

        return _sse_response(stream, _guard_stream(events()))

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(
        body: p.ChatCompletionRequest, token: str = Depends(_token)
    ) -> dict[str, Any] | StreamingResponse:
        call, key = await _begin(state, token, body.model, "chat")
        max_tokens = body.max_completion_tokens or body.max_tokens or 256
        _check_max_tokens(call, max_tokens, "max_tokens")
        assert state.backend.prompter is not None
        rendered = state.backend.prompter.chat(
            [{"role": m.role, "content": m.text()} for m in body.messages]
        )
        req = GenerationRequest(
            prompt=rendered.text,
            adapter=key,
            max_new_tokens=max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            n=body.n,
            stop=[*p.stop_list(body.stop), *rendered.stop],
            seed=body.seed,
            stop_at_block_end=False,
            team=call.team,
        )
        stream = _Stream(state, call, req, streaming=body.stream)
        rid = p.new_id("chatcmpl")
        if not body.stream:
            return p.chat_body(rid, body.model, await _answer(stream))
        first = await _first(stream)
        include_usage = bool((body.stream_options or {}).get("include_usage"))

        async def events() -> AsyncIterator[bytes]:
            for i in range(body.n):
                role = {"role": "assistant", "content": ""}
                yield p.sse(p.chat_chunk(rid, body.model, i, role, None))
            async for chunk in _chunks(stream, first):
                if chunk.text:
                    delta = {"content": chunk.text}
                    yield p.sse(p.chat_chunk(rid, body.model, chunk.index, delta, None))
                if chunk.finish_reason is not None:
                    yield p.sse(p.chat_chunk(rid, body.model, chunk.index, {}, chunk.finish_reason))
            if include_usage:
                yield p.sse(
                    p.usage_chunk(
                        rid,
                        body.model,
                        "chat.completion.chunk",
                        stream.prompt_tokens,
                        stream.completion_tokens,
                    )
                )
            yield p.sse("[DONE]")

        return _sse_response(stream, _guard_stream(events()))


async def _guard_stream(events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """An error after the headers went out becomes an SSE error event (OpenAI's shape)."""
    try:
        async for event in events:
            yield event
    except ServeError as err:
        yield p.sse(openai_error_body(err))
        yield p.sse("[DONE]")


# -- TGI --------------------------------------------------------------------------------------


def _tgi_request(
    state: _Serving, body: p.TgiRequest, key: str | None, call: _Call
) -> GenerationRequest:
    params = body.parameters
    max_new = params.max_new_tokens or min(100, call.limits.max_tokens)
    _check_max_tokens(call, max_new, "max_new_tokens")
    # TGI samples when asked to, or when a sampling knob is moved off its neutral value.
    t = params.temperature
    sample = params.do_sample or (t is not None and t not in (0.0, 1.0)) or (params.top_p or 1) < 1
    prompter = state.backend.prompter
    fim = split_fim_text(body.inputs, prompter.fim.style) if prompter and prompter.fim else None
    prompt, suffix = fim if fim is not None else (body.inputs, None)
    return GenerationRequest(
        prompt=prompt,
        suffix=suffix,
        adapter=key,
        max_new_tokens=max_new,
        temperature=(t if t is not None else 1.0) if sample else 0.0,
        top_p=params.top_p or 1.0,
        stop=params.stop,
        seed=params.seed,
        team=call.team,
    )


def _add_tgi_routes(app: FastAPI, state: _Serving) -> None:
    async def start(body: p.TgiRequest, token: str, model: str | None, route: str) -> _Stream:
        call, key = await _begin(state, token, model or body.parameters.adapter_id, route)
        req = _tgi_request(state, body, key, call)
        return _Stream(state, call, req, streaming=route == "generate_stream")

    async def generate(body: p.TgiRequest, token: str, model: str | None) -> dict[str, Any]:
        stream = await start(body, token, model, "generate")
        gen = (await _answer(stream))[0]
        prefix = body.inputs if body.parameters.return_full_text else ""
        return p.tgi_body(gen, prefix, body.parameters.seed, body.parameters.details)

    async def generate_stream(
        body: p.TgiRequest, token: str, model: str | None
    ) -> StreamingResponse:
        stream = await start(body, token, model, "generate_stream")
        first = await _first(stream)
        prefix = body.inputs if body.parameters.return_full_text else ""

        async def events() -> AsyncIterator[bytes]:
            text, n = prefix, 0
            try:
                async for chunk in _chunks(stream, first):
                    text += chunk.text
                    done = chunk.finish_reason is not None
                    event = p.tgi_stream_event(
                        n, chunk, text if done else None, body.parameters.seed
                    )
                    yield f"data:{json.dumps(event)}\n\n".encode()
                    n += 1
            except ServeError as err:
                yield f"data:{json.dumps(tgi_error_body(err))}\n\n".encode()

        return _sse_response(stream, events())

    async def compat(body: p.TgiRequest, token: str, model: str | None) -> Any:
        if body.stream:
            return await generate_stream(body, token, model)
        return [await generate(body, token, model)]

    for prefix, with_model in (("", False), ("/tgi/{model}", True)):
        _route(app, f"{prefix}/generate", generate, with_model)
        _route(app, f"{prefix}/generate_stream", generate_stream, with_model)
        _route(app, prefix or "/", compat, with_model)


def _route(app: FastAPI, path: str, handler: Callable[..., Any], with_model: bool) -> None:
    if with_model:

        async def named(model: str, body: p.TgiRequest, token: str = Depends(_token)) -> Any:
            return await handler(body, token, model)

        app.add_api_route(path, named, methods=["POST"], response_model=None)
    else:

        async def unnamed(body: p.TgiRequest, token: str = Depends(_token)) -> Any:
            return await handler(body, token, None)

        app.add_api_route(path, unnamed, methods=["POST"], response_model=None)
