"""Text Generation Inference's protocol (llm-vscode and TGI clients): /generate,
/generate_stream and the compatibility route /, each also under /tgi/{model} for a named model
(else `parameters.adapter_id`, else the base). A prompt in the model's FIM tokens is filled in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from tailor.stages.serve import protocol as p
from tailor.stages.serve.admission import Call, begin, check_max_tokens
from tailor.stages.serve.deps import ServingDep, ServingState, TokenDep
from tailor.stages.serve.errors import ServeError, tgi_error_body
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.inflight import (
    Stream,
    answer,
    chunks,
    first,
    json_response,
    sse_response,
)

router = APIRouter(tags=["tgi"])


@router.post("/generate", response_model=None)
async def generate(body: p.TgiRequest, state: ServingDep, token: TokenDep) -> JSONResponse:
    """The whole generation (with its completion id, which TGI clients keep as an extra field)."""
    return await _generate(state, body, token, None)


@router.post("/generate_stream", response_model=None)
async def generate_stream(
    body: p.TgiRequest, state: ServingDep, token: TokenDep
) -> StreamingResponse:
    """The generation as server-sent events, token by token."""
    return await _generate_stream(state, body, token, None)


@router.post("/", response_model=None)
async def compat(body: p.TgiRequest, state: ServingDep, token: TokenDep) -> Any:
    """`/generate` in a list, or `/generate_stream` when `stream` is set."""
    return await _compat(state, body, token, None)


@router.post("/tgi/{model}/generate", response_model=None)
async def generate_named(
    model: str, body: p.TgiRequest, state: ServingDep, token: TokenDep
) -> JSONResponse:
    """`/generate` for one of the team's models."""
    return await _generate(state, body, token, model)


@router.post("/tgi/{model}/generate_stream", response_model=None)
async def generate_stream_named(
    model: str, body: p.TgiRequest, state: ServingDep, token: TokenDep
) -> StreamingResponse:
    """`/generate_stream` for one of the team's models."""
    return await _generate_stream(state, body, token, model)


@router.post("/tgi/{model}", response_model=None)
async def compat_named(model: str, body: p.TgiRequest, state: ServingDep, token: TokenDep) -> Any:
    """The compatibility route for one of the team's models."""
    return await _compat(state, body, token, model)


async def _start(
    state: ServingState, body: p.TgiRequest, token: str, model: str | None, route: str
) -> Stream:
    call, key = await begin(state, token, model or body.parameters.adapter_id, route)
    req = _request(state, body, key, call)
    return Stream(state, call, req, streaming=route == "generate_stream")


def _request(
    state: ServingState, body: p.TgiRequest, key: str | None, call: Call
) -> GenerationRequest:
    params = body.parameters
    max_new = params.max_new_tokens or min(100, call.limits.max_tokens)
    check_max_tokens(call, max_new, "max_new_tokens")
    temperature, top_p = p.tgi_sampling(params)
    assert state.backend.prompter is not None
    prompt, suffix = state.backend.prompter.split_fim(body.inputs)
    return GenerationRequest(
        prompt=prompt,
        suffix=suffix,
        adapter=key,
        max_new_tokens=max_new,
        temperature=temperature,
        top_p=top_p,
        stop=params.stop,
        seed=params.seed,
        team=call.team,
    )


async def _generated(
    state: ServingState, body: p.TgiRequest, token: str, model: str | None
) -> tuple[Stream, dict[str, Any]]:
    stream = await _start(state, body, token, model, "generate")
    gen = (await answer(stream))[0]
    prefix = body.inputs if body.parameters.return_full_text else ""
    out = p.tgi_body(gen, prefix, body.parameters.seed, body.parameters.details)
    return stream, {**out, "id": stream.id}


async def _generate(
    state: ServingState, body: p.TgiRequest, token: str, model: str | None
) -> JSONResponse:
    return json_response(*await _generated(state, body, token, model))


async def _generate_stream(
    state: ServingState, body: p.TgiRequest, token: str, model: str | None
) -> StreamingResponse:
    stream = await _start(state, body, token, model, "generate_stream")
    head = await first(stream)
    prefix = body.inputs if body.parameters.return_full_text else ""

    async def events() -> AsyncIterator[bytes]:
        text, n = prefix, 0
        try:
            async for chunk in chunks(stream, head):
                text += chunk.text
                done = chunk.finish_reason is not None
                event = p.tgi_stream_event(n, chunk, text if done else None, body.parameters.seed)
                yield f"data:{json.dumps(event)}\n\n".encode()
                n += 1
        except ServeError as err:
            yield f"data:{json.dumps(tgi_error_body(err))}\n\n".encode()

    return sse_response(stream, events())


async def _compat(state: ServingState, body: p.TgiRequest, token: str, model: str | None) -> Any:
    if body.stream:
        return await _generate_stream(state, body, token, model)
    stream, out = await _generated(state, body, token, model)
    return json_response(stream, [out])
