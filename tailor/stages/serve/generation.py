"""The generation contract shared by the serving engine and the evaluator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from tailor.stages.context.snippets import ContextFile


class GenerationRequest(BaseModel):
    """One completion request, after protocol parsing; `suffix` set means fill-in-the-middle."""

    prompt: str
    suffix: str | None = None
    adapter: str | None = Field(None, description="Adapter key in the engine; None = base model.")
    max_new_tokens: int = Field(64, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    single_line: bool = False
    stop_at_block_end: bool | None = Field(
        None, description="Stop where the current block ends; None = on for FIM requests."
    )
    logprobs: int | None = Field(
        None, ge=0, le=20, description="Return each token's logprob and this many top ones."
    )
    ignore_eos: bool = Field(
        False, description="Generate max_new_tokens whatever the model says (benchmarks)."
    )
    team: str = Field("", description="Who asks: the engine shares its batch fairly between teams.")
    context: list[ContextFile] = Field(
        default_factory=list, description="Repository context placed before the prompt."
    )
    path: str | None = Field(None, description="The edited file's path (repository layouts).")


class TokenLogprob(BaseModel):
    """One generated token with its log-probability and the most likely alternatives."""

    token: str
    logprob: float
    top: dict[str, float] = Field(default_factory=dict)


class Generation(BaseModel):
    """One generated choice, already post-processed for insertion into an editor."""

    text: str
    finish_reason: Literal["stop", "length"]
    completion_tokens: int
    prompt_tokens: int
    logprobs: list[TokenLogprob] | None = None


class GenerationChunk(BaseModel):
    """A streamed piece of one choice; the last piece of a choice carries `finish_reason`."""

    index: int
    text: str = ""
    finish_reason: Literal["stop", "length"] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] = Field(default_factory=list)


# What a streaming generator hands its sink: a chunk, or the error that ended the request.
ChunkSink = Callable[[GenerationChunk | Exception], None]


class OverloadedError(RuntimeError):
    """The backend cannot take the request now; it may be sent again after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueFullError(OverloadedError):
    """Refused at submit: the team already has as many choices waiting as one team may."""


class QueueTimeoutError(OverloadedError):
    """Sent to the sink: no choice of the request could start within the queue timeout."""


class Generator(Protocol):
    """Anything that turns requests into post-processed generations (engine, vLLM, a fake)."""

    def generate(self, request: GenerationRequest) -> list[Generation]: ...


class Ticket(Protocol):
    """A submitted request; cancelling stops its generation and frees what it holds."""

    def cancel(self) -> None: ...
    def tokens_used(self) -> int:
        """Prompt (once, when a choice started) plus every token generated so far."""
        ...
