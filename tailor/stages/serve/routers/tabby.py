"""Tabby's protocol (Tabby's IDE plugins through tabby-agent): completions, health, server
setting and events, for the base at the root (`/v1/...`; a Tabby-shaped `/v1/completions` body
comes here from the OpenAI router) and for a team's model under `/tabby/{model}`, which is the
endpoint a Tabby plugin is given.

Events are recorded against the completion's id (`tailor.stages.serve.feedback`): another team's id
is 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from tailor import __version__
from tailor.stages.serve import feedback
from tailor.stages.serve import tabby as wire
from tailor.stages.serve.admission import begin, check_max_tokens
from tailor.stages.serve.deps import ServingDep, ServingState, TokenDep, caller
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.inflight import Stream, answer
from tailor.stages.serve.retrieval import debug_snippets, with_context
from tailor.telemetry.records import language_of

router = APIRouter(tags=["tabby"])

# What Tabby's server decodes at most for one completion.
DEFAULT_MAX_TOKENS = 64


async def complete(
    state: ServingState, token: str, model: str | None, body: wire.CompletionRequest
) -> dict[str, Any]:
    """One Tabby completion (whole: Tabby does not stream completions)."""
    call, key = await begin(state, token, model, "tabby_completions")
    max_tokens = min(DEFAULT_MAX_TOKENS, call.limits.max_tokens)
    check_max_tokens(call, max_tokens, "max_tokens")
    assert state.backend.prompter is not None
    prefix, suffix = wire.prompt_parts(body)
    if suffix is None:
        prefix, suffix = state.backend.prompter.split_fim(prefix)
    req = GenerationRequest(
        prompt=prefix,
        suffix=suffix,
        adapter=key,
        max_new_tokens=max_tokens,
        temperature=body.temperature or 0.0,
        seed=body.seed,
        team=call.team,
        path=body.segments.filepath if body.segments else None,
    )
    debug = body.debug_options or wire.DebugOptions()
    retrieve = debug.raw_prompt is None and not debug.disable_retrieval_augmented_code_completion
    editor = wire.editor_snippets(body)
    req, found = await with_context(state, call.who, req, editor, enabled=retrieve)
    language = language_of(body.language, req.path)
    stream = Stream(state, call, req, streaming=False, language=language)
    gens = await answer(stream)
    shown = debug_snippets(found) if debug.return_snippets else None
    return wire.completion_body(stream.id, [g.text for g in gens], shown)


@router.post("/tabby/{model}/v1/completions")
async def completions_named(
    model: str, body: wire.CompletionRequest, state: ServingDep, token: TokenDep
) -> dict[str, Any]:
    """A Tabby completion from one of the team's models."""
    return await complete(state, token, model, body)


@router.get("/v1/health")
async def health(state: ServingDep, token: TokenDep) -> dict[str, Any]:
    """Tabby's health check: the base model, to a caller with a token."""
    await caller(state, token, None)
    return wire.health_body(state.family, __version__)


@router.get("/tabby/{model}/v1/health")
async def health_named(model: str, state: ServingDep, token: TokenDep) -> dict[str, Any]:
    """Tabby's health check for one of the team's models; 404 for any other."""
    await _known(state, token, model)
    return wire.health_body(model, __version__)


@router.get("/v1beta/server_setting")
async def server_setting(state: ServingDep, token: TokenDep) -> dict[str, Any]:
    """What Tabby's agent reads of the server's settings."""
    await caller(state, token, None)
    return dict(wire.SERVER_SETTING)


@router.get("/tabby/{model}/v1beta/server_setting")
async def server_setting_named(model: str, state: ServingDep, token: TokenDep) -> dict[str, Any]:
    """The server's settings, under a model's endpoint."""
    await _known(state, token, model)
    return dict(wire.SERVER_SETTING)


@router.post("/v1/events")
async def events(
    body: wire.LogEventRequest,
    state: ServingDep,
    token: TokenDep,
    select_kind: Annotated[str | None, Query(max_length=16)] = None,
) -> dict[str, Any]:
    """A view, select or dismiss event of one of the team's completions, recorded."""
    who = await caller(state, token, None)
    return await feedback.record(state, who, body.completion_id, body.type, body.choice_index)


@router.post("/tabby/{model}/v1/events")
async def events_named(
    model: str,
    body: wire.LogEventRequest,
    state: ServingDep,
    token: TokenDep,
    select_kind: Annotated[str | None, Query(max_length=16)] = None,
) -> dict[str, Any]:
    """An event of a completion from one of the team's models, recorded."""
    call, _key = await begin(state, token, model, "tabby")
    assert call.who is not None
    return await feedback.record(state, call.who, body.completion_id, body.type, body.choice_index)


async def _known(state: ServingState, token: str, model: str) -> None:
    """401 for a token that may not call, 404 for a model that is not the team's."""
    await begin(state, token, model, "tabby")
