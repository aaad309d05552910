"""Ollama's protocol (Continue's ollama provider): `/api/generate` with `suffix` for
fill-in-the-middle, streamed as NDJSON or whole, `/api/show` and `/api/tags`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from tailor.stages.serve import ollama as wire
from tailor.stages.serve import protocol as p
from tailor.stages.serve.admission import Call, begin, check_max_tokens
from tailor.stages.serve.deps import ServingDep, ServingState, TokenDep, caller
from tailor.stages.serve.errors import ServeError
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.inflight import (
    Stream,
    answer,
    chunks,
    first,
    json_response,
    ndjson_response,
)

router = APIRouter(prefix="/api", tags=["ollama"])

# Ollama's own defaults where a request leaves an option out (its num_predict is unbounded:
# here it is bounded by the endpoint's token cap).
DEFAULT_MAX_TOKENS = 128
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.9


@router.post("/generate", response_model=None)
async def generate(
    body: wire.GenerateRequest, state: ServingDep, token: TokenDep
) -> dict[str, Any] | JSONResponse | StreamingResponse:
    """A completion of `prompt` (with `suffix`: fill-in-the-middle), streamed unless asked not;
    the completion's id in the `X-Completion-Id` header (Ollama's body has no id)."""
    call, key = await begin(state, token, body.model, "ollama_generate")
    if body.images:
        raise ServeError(400, "unsupported", "`images` are not supported", param="images")
    if body.format is not None:
        raise ServeError(400, "unsupported", "`format` is not supported", param="format")
    if not body.prompt and body.suffix is None:
        return wire.loaded(body.model)
    stream = Stream(state, call, _request(state, call, key, body), streaming=body.stream)
    if not body.stream:
        g = (await answer(stream))[0]
        elapsed = time.perf_counter() - call.started
        return json_response(
            stream,
            wire.final(
                body.model, g.text, g.finish_reason, g.prompt_tokens, g.completion_tokens, elapsed
            ),
        )
    head = await first(stream)

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for c in chunks(stream, head):
                if c.text:
                    yield wire.ndjson(wire.chunk(body.model, c.text))
                if c.finish_reason is not None:
                    elapsed = time.perf_counter() - call.started
                    last = wire.final(
                        body.model,
                        "",
                        c.finish_reason,
                        c.prompt_tokens,
                        c.completion_tokens,
                        elapsed,
                    )
                    yield wire.ndjson(last)
        except ServeError as err:  # the headers are out: Ollama's clients read an error line
            yield wire.ndjson({"error": err.message})

    return ndjson_response(stream, lines())


def _request(
    state: ServingState, call: Call, key: str | None, body: wire.GenerateRequest
) -> GenerationRequest:
    opts = body.options
    asked = opts.num_predict
    max_tokens = asked if asked and asked > 0 else min(DEFAULT_MAX_TOKENS, call.limits.max_tokens)
    check_max_tokens(call, max_tokens, "options.num_predict")
    assert state.backend.prompter is not None
    prompt, suffix = body.prompt, body.suffix
    if suffix is None:  # a raw prompt may be written in the model's FIM tokens
        prompt, suffix = state.backend.prompter.split_fim(prompt)
    return GenerationRequest(
        prompt=prompt,
        suffix=suffix,
        adapter=key,
        max_new_tokens=max_tokens,
        temperature=DEFAULT_TEMPERATURE if opts.temperature is None else opts.temperature,
        top_p=opts.top_p or DEFAULT_TOP_P,
        stop=p.stop_list(opts.stop),
        seed=opts.seed,
        team=call.team,
    )


@router.post("/show")
async def show(body: wire.ShowRequest, state: ServingDep, token: TokenDep) -> dict[str, Any]:
    """The model's template (in its FIM tokens), context window and capabilities."""
    name = body.model_name()
    if name is None:
        raise ServeError(400, "invalid_request", "send the model's name in `model`", param="model")
    await begin(state, token, name, "ollama_show")
    prompter = state.backend.prompter
    assert prompter is not None
    fim = prompter.fim.style if prompter.fim else None
    return wire.show_body(state.family, fim, prompter.context_length)


@router.get("/tags")
async def tags(state: ServingDep, token: TokenDep) -> dict[str, Any]:
    """The team's models and the base."""
    team = (await caller(state, token, None)).team
    names = await run_in_threadpool(state.list_models, team)
    return {"models": [wire.tag(n, state.family) for n in [*names, state.family]]}
