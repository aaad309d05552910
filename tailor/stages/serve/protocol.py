"""Wire formats IDE clients speak: OpenAI completions/chat and TGI generate, in and out.

Requests are parsed into pydantic models (unknown fields are ignored, as the real servers
do); responses are plain dicts built by pure functions, byte-compatible with the originals.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tailor.stages.serve.generation import Generation, GenerationChunk, TokenLogprob

# -- OpenAI -----------------------------------------------------------------------------------


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TgiParameters(_Lenient):
    """TGI's `parameters` (what llm-ls and huggingface_hub send)."""

    adapter_id: str | None = None
    max_new_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    do_sample: bool = False
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    return_full_text: bool | None = False
    details: bool = False


def tgi_sampling(params: TgiParameters) -> tuple[float, float]:
    """(temperature, top_p) as TGI means them: it samples when asked to, or when a sampling
    knob is moved off its neutral value; else it decodes greedily."""
    t = params.temperature
    sample = params.do_sample or (t is not None and t not in (0.0, 1.0)) or (params.top_p or 1) < 1
    return ((t if t is not None else 1.0) if sample else 0.0), params.top_p or 1.0


class CompletionRequest(_Lenient):
    """OpenAI `/v1/completions`; `suffix` makes it fill-in-the-middle."""

    model: str
    prompt: str | list[str] = ""
    suffix: str | None = None
    max_tokens: int | None = Field(16, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stop: str | list[str] | None = None
    logprobs: int | None = Field(None, ge=0, le=20)
    seed: int | None = None
    echo: bool = False
    stream_options: dict[str, Any] | None = None
    # Tailor extensions (OpenAI clients send them with `extra_body`).
    single_line: bool = False
    stop_at_block_end: bool | None = None
    ignore_eos: bool = False
    # False: no repository context for this request (Tabby's
    # `disable_retrieval_augmented_code_completion`), e.g. to compare with a context-free run.
    repository_context: bool = True
    # llm-ls's OpenAI backend nests TGI's parameters in the body (its `llm.requestBody`).
    parameters: TgiParameters | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("send one prompt per request (a list of exactly one string)")
        return v

    def prompt_text(self) -> str:
        """The single prompt string."""
        return self.prompt[0] if isinstance(self.prompt, list) else self.prompt

    def with_parameters(self) -> CompletionRequest:
        """The request with TGI's nested `parameters` filling what the body itself leaves unset."""
        params, given = self.parameters, self.model_fields_set
        if params is None:
            return self
        update: dict[str, Any] = {}
        if "max_tokens" not in given and params.max_new_tokens:
            update["max_tokens"] = params.max_new_tokens
        if not given & {"temperature", "top_p"}:
            update["temperature"], update["top_p"] = tgi_sampling(params)
        if "stop" not in given and params.stop:
            update["stop"] = params.stop
        if "seed" not in given and params.seed is not None:
            update["seed"] = params.seed
        return self.model_copy(update=update)


class ChatMessage(_Lenient):
    """One chat turn; `content` may be OpenAI's list of text parts."""

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = ""

    def text(self) -> str:
        """The message's text, parts joined."""
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(_Lenient):
    """OpenAI `/v1/chat/completions`."""

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stop: str | list[str] | None = None
    seed: int | None = None
    stream_options: dict[str, Any] | None = None


def stop_list(stop: str | list[str] | None) -> list[str]:
    """OpenAI's `stop` (a string or up to four strings) as a list."""
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def new_id(kind: str) -> str:
    """An id in OpenAI's style (`cmpl-…`, `chatcmpl-…`)."""
    return f"{kind}-{uuid.uuid4().hex[:24]}"


def _logprobs_obj(lps: list[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    offsets, pos = [], offset
    for lp in lps:
        offsets.append(pos)
        pos += len(lp.token)
    return {
        "tokens": [lp.token for lp in lps],
        "token_logprobs": [lp.logprob for lp in lps],
        "top_logprobs": [lp.top for lp in lps],
        "text_offset": offsets,
    }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI's usage block."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(rid: str, model: str, gens: list[Generation], logprobs: bool) -> dict[str, Any]:
    """A whole `text_completion` response."""
    choices = [
        {
            "text": g.text,
            "index": i,
            "logprobs": _logprobs_obj(g.logprobs or []) if logprobs else None,
            "finish_reason": g.finish_reason,
        }
        for i, g in enumerate(gens)
    ]
    return _whole(rid, "text_completion", model, choices, gens)


def completion_chunk(
    rid: str, model: str, chunk: GenerationChunk, logprobs: bool
) -> dict[str, Any]:
    """One streamed `text_completion` chunk."""
    return {
        "id": rid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "text": chunk.text,
                "index": chunk.index,
                "logprobs": _logprobs_obj(chunk.logprobs) if logprobs else None,
                "finish_reason": chunk.finish_reason,
            }
        ],
    }


def chat_body(rid: str, model: str, gens: list[Generation]) -> dict[str, Any]:
    """A whole `chat.completion` response."""
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": g.text},
            "logprobs": None,
            "finish_reason": g.finish_reason,
        }
        for i, g in enumerate(gens)
    ]
    return _whole(rid, "chat.completion", model, choices, gens)


def _whole(
    rid: str, obj: str, model: str, choices: list[dict[str, Any]], gens: list[Generation]
) -> dict[str, Any]:
    # The prompt is shared by every choice; its tokens count once.
    prompt_tokens = gens[0].prompt_tokens if gens else 0
    return {
        "id": rid,
        "object": obj,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(prompt_tokens, sum(g.completion_tokens for g in gens)),
    }


def chat_chunk(
    rid: str, model: str, index: int, delta: dict[str, str], finish: str | None
) -> dict[str, Any]:
    """One streamed `chat.completion.chunk`."""
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def usage_chunk(rid: str, model: str, obj: str, prompt: int, completion: int) -> dict[str, Any]:
    """The last chunk when a client asks `stream_options.include_usage`."""
    return {
        "id": rid,
        "object": obj,
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage(prompt, completion),
    }


def sse(payload: dict[str, Any] | str) -> bytes:
    """One server-sent event line pair (`data: …`)."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


# -- TGI ----------------------------------------------------------------------------------------


class FeedbackRequest(BaseModel):
    """Tailor's OpenAI-side event: what the editor did with a completion (Tabby's event kinds)."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["view", "select", "dismiss"]
    choice_index: int = Field(0, ge=0, le=127)


class TgiRequest(_Lenient):
    """TGI `/generate`, `/generate_stream` and `/` bodies."""

    inputs: str
    parameters: TgiParameters = Field(default_factory=lambda: TgiParameters.model_validate({}))
    stream: bool = False


def tgi_finish(reason: str | None) -> str:
    """TGI's finish-reason vocabulary."""
    return "length" if reason == "length" else "eos_token"


def tgi_body(gen: Generation, prefix: str, seed: int | None, details: bool) -> dict[str, Any]:
    """A `/generate` response."""
    body: dict[str, Any] = {"generated_text": prefix + gen.text}
    if details:
        body["details"] = {
            "finish_reason": tgi_finish(gen.finish_reason),
            "generated_tokens": gen.completion_tokens,
            "seed": seed,
            "prefill": [],
            "tokens": [],
        }
    return body


def tgi_stream_event(
    n: int, chunk: GenerationChunk, full_text: str | None, seed: int | None
) -> dict[str, Any]:
    """One `/generate_stream` event; the last one carries the whole text and details."""
    lp = chunk.logprobs[-1].logprob if chunk.logprobs else 0.0
    event: dict[str, Any] = {
        "index": n,
        "token": {"id": 0, "text": chunk.text, "logprob": lp, "special": False},
        "generated_text": full_text,
        "details": None,
    }
    if full_text is not None:
        event["details"] = {
            "finish_reason": tgi_finish(chunk.finish_reason),
            "generated_tokens": chunk.completion_tokens,
            "seed": seed,
        }
    return event
