"""EndpointSpec: what a published team endpoint serves (pure data; the CRD is built from it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AdapterRef(BaseModel):
    """One published adapter version the endpoint serves under a model name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        ...,
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="Model name clients send in `model` (the adapter's name).",
    )
    version: str = Field(
        ...,
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Adapter version currently promoted under this name.",
    )
    prefix: str = Field(
        ...,
        min_length=1,
        pattern=r"^teams/[^/]+/adapters/[^/]+/[^/]+/?$",
        description="Object-store key prefix holding adapter_model.safetensors and "
        "adapter_config.json (`teams/<team>/adapters/<name>/<version>/`).",
    )


class EndpointLimits(BaseModel):
    """Per-team request limits enforced by the serving app."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int = Field(
        600, ge=1, description="Requests a team may make per minute; more answer 429."
    )
    tokens_per_minute: int = Field(
        600_000,
        ge=1,
        description="Tokens a team may use per minute, counted as prompt plus n * max_tokens "
        "when a request starts and settled to what it used when it ends; more answer 429.",
    )
    max_tokens: int = Field(
        512, ge=1, description="Largest `max_tokens`/`max_new_tokens` a request may ask for."
    )
    request_timeout_s: float = Field(
        60.0, gt=0, description="Wall-clock limit for one request, streaming included."
    )


class EndpointSpec(BaseModel):
    """A team's inference endpoint: one base model, the team's adapters, replicas, limits."""

    model_config = ConfigDict(extra="forbid")

    team: str = Field(
        ...,
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="Team slug the endpoint belongs to; only its tokens may call it.",
    )
    base_model: str = Field(
        ...,
        min_length=1,
        description="Base model reference: local path, hub id or s3:// URL.",
    )
    adapters: list[AdapterRef] = Field(
        default_factory=list, description="Adapters served, each under its model name."
    )
    replicas: int = Field(1, ge=0, le=64, description="Serving pods (cluster mode).")
    backend: Literal["tailor", "vllm"] = Field(
        "tailor",
        description="`tailor`: in-process multi-adapter engine (CPU/embedded default); "
        "`vllm`: vLLM OpenAI server with --enable-lora (GPU).",
    )
    max_loras: int = Field(
        8, ge=1, le=256, description="Adapters held hot at once (vLLM --max-loras)."
    )
    max_lora_rank: int = Field(
        64, ge=1, le=512, description="Largest LoRA rank accepted (vLLM --max-lora-rank)."
    )
    limits: EndpointLimits = Field(
        default_factory=lambda: EndpointLimits.model_validate({}),
        description="Per-team request limits.",
    )
    context_tokens: int = Field(
        0,
        ge=0,
        le=8192,
        description="Repository context: the budget, in the model's tokens, of the team's "
        "code retrieved from its index before each completion (0: none).",
    )
