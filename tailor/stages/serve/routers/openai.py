"""OpenAI's protocol: /v1/models, /v1/completions (FIM through `suffix`), /v1/chat/completions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Path
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from tailor.stages.serve import feedback
from tailor.stages.serve import protocol as p
from tailor.stages.serve import tabby as tabby_wire
from tailor.stages.serve.admission import begin, check_max_tokens
from tailor.stages.serve.deps import ServingDep, TokenDep, caller
from tailor.stages.serve.errors import ServeError, openai_error_body
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.inflight import Stream, answer, chunks, first, sse_response
from tailor.stages.serve.retrieval import with_context
from tailor.stages.serve.routers import tabby

router = APIRouter(prefix="/v1", tags=["openai"])
Body_ = TypeVar("Body_", bound=BaseModel)


@router.get("/models")
async def models(state: ServingDep, token: TokenDep) -> dict[str, Any]:
    """The caller's team's models, and the base model under its own id (its family)."""
    team = (await caller(state, token, None)).team
    names = await run_in_threadpool(state.list_models, team)
    data = [{"id": n, "object": "model", "created": 0, "owned_by": team} for n in names]
    data.append({"id": state.family, "object": "model", "created": 0, "owned_by": "tailor"})
    return {"object": "list", "data": data}


@router.post("/completions", response_model=None)
async def completions(
    raw: Annotated[dict[str, Any], Body()], state: ServingDep, token: TokenDep
) -> dict[str, Any] | StreamingResponse:
    """A completion of `prompt` (with `suffix`: fill-in-the-middle), whole or streamed; a body
    in Tabby's shape (`segments`) is Tabby's completion of the base model."""
    if tabby_wire.is_tabby(raw):
        return await tabby.complete(state, token, None, _parsed(tabby_wire.CompletionRequest, raw))
    body = _parsed(p.CompletionRequest, raw).with_parameters()
    call, key = await begin(state, token, body.model, "completions")
    max_tokens = body.max_tokens or 16
    check_max_tokens(call, max_tokens, "max_tokens")
    if body.echo:
        raise ServeError(400, "unsupported", "`echo` is not supported", param="echo")
    assert state.backend.prompter is not None
    prompt, suffix = body.prompt_text(), body.suffix
    if suffix is None:  # llm-ls writes the FIM prompt itself, in the model's tokens
        prompt, suffix = state.backend.prompter.split_fim(prompt)
    req = GenerationRequest(
        prompt=prompt,
        suffix=suffix,
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
    if req.suffix is not None:  # an editor's completion: the team's code as its context
        req, _found = await with_context(state, call.who, req, enabled=body.repository_context)
    stream = Stream(state, call, req, streaming=body.stream)
    rid, logprobs = stream.id, body.logprobs is not None
    if not body.stream:
        return p.completion_body(rid, body.model, await answer(stream), logprobs)
    head = await first(stream)
    include_usage = bool((body.stream_options or {}).get("include_usage"))

    async def events() -> AsyncIterator[bytes]:
        async for chunk in chunks(stream, head):
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

    return sse_response(stream, _guard_stream(events()))


@router.post("/completions/{completion_id}/feedback")
async def completion_feedback(
    completion_id: Annotated[str, Path(max_length=64)],
    body: p.FeedbackRequest,
    state: ServingDep,
    token: TokenDep,
) -> dict[str, Any]:
    """What the editor did with one of the team's completions (`view`, `select`: kept,
    `dismiss`); 404 for an id that is not the team's."""
    who = await caller(state, token, None)
    return await feedback.record(state, who, completion_id, body.event, body.choice_index)


@router.post("/chat/completions", response_model=None)
async def chat(
    body: p.ChatCompletionRequest, state: ServingDep, token: TokenDep
) -> dict[str, Any] | StreamingResponse:
    """The assistant's reply to `messages` in the model's chat template, whole or streamed."""
    call, key = await begin(state, token, body.model, "chat")
    max_tokens = body.max_completion_tokens or body.max_tokens or 256
    check_max_tokens(call, max_tokens, "max_tokens")
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
    stream = Stream(state, call, req, streaming=body.stream, kind="chatcmpl")
    rid = stream.id
    if not body.stream:
        return p.chat_body(rid, body.model, await answer(stream))
    head = await first(stream)
    include_usage = bool((body.stream_options or {}).get("include_usage"))

    async def events() -> AsyncIterator[bytes]:
        for i in range(body.n):
            role = {"role": "assistant", "content": ""}
            yield p.sse(p.chat_chunk(rid, body.model, i, role, None))
        async for chunk in chunks(stream, head):
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

    return sse_response(stream, _guard_stream(events()))


def _parsed(model: type[Body_], raw: dict[str, Any]) -> Body_:
    """`raw` as `model`, its faults answered as FastAPI answers a body it cannot parse."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


async def _guard_stream(events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """An error after the headers went out becomes an SSE error event (OpenAI's shape)."""
    try:
        async for event in events:
            yield event
    except ServeError as err:
        yield p.sse(openai_error_body(err))
        yield p.sse("[DONE]")
