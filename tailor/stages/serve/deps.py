"""What every serving route shares, handed out as FastAPI dependencies: the serving state
(`app.state.serving`: backend, lookup, limits, metrics) and the caller's bearer token."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from tailor.stages.serve.callers import BASE_MODEL, Caller, Lookup, base_family
from tailor.stages.serve.errors import ServeError
from tailor.stages.serve.generation import ChunkSink, GenerationRequest, Ticket
from tailor.stages.serve.limits import RateLimiter
from tailor.stages.serve.metrics import ServingMetrics
from tailor.stages.serve.prompting import Prompter
from tailor.stages.serve.spec import EndpointLimits

if TYPE_CHECKING:  # both need numpy, which the cluster gateway's image lacks
    from tailor.stages.context.store import TeamIndexes
    from tailor.telemetry.recorder import Recorder


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
class ServingState:
    """One app's backend, how it tells callers apart and limits them, and what it counts."""

    backend: ServingBackend
    lookup: Lookup
    list_models: ListModels
    limits_for: Callable[[str], EndpointLimits]
    metrics: ServingMetrics
    base_name: str
    stream_interval_s: float
    telemetry: Recorder | None = None  # None: completions are not recorded
    contexts: TeamIndexes | None = None  # None: no repository context is retrieved
    metrics_token: str | None = None  # None: /metrics for callers on this machine only
    limiter: RateLimiter = field(default_factory=RateLimiter)
    in_flight: int = 0
    family: str = field(init=False)  # the base's id in listings, and its family in aliases

    def __post_init__(self) -> None:
        self.family = base_family(self.base_name)

    def is_base(self, name: str) -> bool:
        """True when `name` means the base model (`<base>`, its catalog name or its id)."""
        return name in (BASE_MODEL, self.base_name, self.family)


async def get_serving(request: Request) -> ServingState:
    """The app's serving state (set once by `create_serving_app`)."""
    # async, as every dependency here: FastAPI would run a plain function in its threadpool.
    state: ServingState = request.app.state.serving
    return state


def unauthorized() -> ServeError:
    """401 for a missing, malformed or unknown token."""
    # A fresh error each time: a shared instance would grow its traceback with every raise.
    return ServeError(
        401,
        "invalid_api_key",
        "missing or invalid bearer token: send `Authorization: Bearer <team token>`",
    )


async def bearer_token(request: Request) -> str:
    """The request's bearer token (checked by the lookup, with the model, in one call)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized()
    return token.strip()


async def caller(state: ServingState, token: str, model: str | None) -> Caller:
    """Who the token belongs to and what `model` (None: the base) means for them; 401 if no one."""
    found = await run_in_threadpool(state.lookup, token, model)
    if found is None:
        raise unauthorized()
    return found


ServingDep = Annotated[ServingState, Depends(get_serving)]
TokenDep = Annotated[str, Depends(bearer_token)]
