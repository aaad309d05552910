"""What a request passes before it is submitted: its caller and model, the endpoint's token
cap, the context window and the team's rate limits. Each refusal is a ServeError."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tailor.fim import FimError
from tailor.stages.serve.callers import BASE_MODEL, Caller, model_aliases
from tailor.stages.serve.deps import ServingState, caller
from tailor.stages.serve.errors import ServeError, model_not_found
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.limits import (
    RateLimitedError,
    Reservation,
    TooLargeError,
    retry_after_header,
)
from tailor.stages.serve.prompting import PromptTooLongError
from tailor.stages.serve.spec import EndpointLimits


@dataclass
class Call:
    """One request in flight: who, which model, and its clock."""

    team: str
    model: str
    route: str
    limits: EndpointLimits
    who: Caller | None = None  # the lookup's answer (the database's ids, for telemetry)
    started: float = field(default_factory=time.perf_counter)
    first_chunk: float | None = None

    @property
    def deadline(self) -> float:
        return self.started + self.limits.request_timeout_s


async def begin(
    state: ServingState, token: str, model: str | None, route: str
) -> tuple[Call, str | None]:
    """Authenticate and resolve the model; the call and the backend adapter key.

    Rate limits are taken later, once the request is known valid (`Stream`): a request
    refused for what it asks costs nothing.
    """
    name = model or BASE_MODEL
    aliases = model_aliases(name, state.family)
    named = None if any(state.is_base(a) for a in aliases) else name
    found = await caller(state, token, named)
    if not state.backend.is_ready():
        raise ServeError(
            503,
            "model_loading",
            "the base model is still loading; retry shortly",
            headers={"Retry-After": "5"},
        )
    for alias in aliases[1:]:  # only when the literal name is none of the team's endpoints
        if found.known:
            break
        found = await caller(state, token, alias)
    if not found.known:
        raise model_not_found(name)
    return Call(found.team, name, route, state.limits_for(found.team), found), found.adapter


def check_max_tokens(call: Call, asked: int, param: str) -> None:
    """400 when the request asks for more tokens than the endpoint allows."""
    if asked > call.limits.max_tokens:
        raise ServeError(
            400,
            "max_tokens_exceeded",
            f"{param}={asked} is over this endpoint's limit of {call.limits.max_tokens}",
            param=param,
        )


def prompt_ids(state: ServingState, req: GenerationRequest) -> list[int]:
    """The request's prompt tokens (counted before anything is charged); 400 if it cannot run."""
    assert state.backend.prompter is not None
    try:
        return state.backend.prompter.check_fits(req)
    except PromptTooLongError as exc:
        raise ServeError(400, "context_length_exceeded", str(exc), param="prompt") from exc
    except FimError as exc:
        raise ServeError(400, "fim_unsupported", str(exc), param="suffix") from exc


def reserve(state: ServingState, call: Call, tokens: int) -> Reservation:
    """Take one request and `tokens` from the team's limits; 429 (counted) or 400 if never."""
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


def _rate_limited(err: RateLimitedError) -> ServeError:
    return ServeError(
        429,
        "rate_limit_exceeded",
        f"{err}; retry in {err.retry_after_s:.1f}s",
        headers={"Retry-After": retry_after_header(err.retry_after_s)},
        members={"limit": err.limit, "limit_per_minute": err.per_minute},
    )
