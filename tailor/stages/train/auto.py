"""Hyperparameters left "auto" (null) in a TrainSpec, chosen from the dataset's size and the base's.

As hosted fine-tuning APIs do: about three epochs, more for a small repository (so it still
gets enough optimizer steps to learn from) and fewer for a large one (bounded time); a LoRA
rank that grows with the data; a learning rate that shrinks as the base model grows. The
choice is a pure function of a few numbers, recorded on the job with the reason.

Only pydantic and the standard library at import: the API imports the spec, not this module,
but `choose` stays cheap to test.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from tailor.stages.train.spec import AUTO_FIELDS, TrainSpec

TARGET_EPOCHS = 3.0
MAX_EPOCHS = 50.0  # a small repository: each epoch cuts new FIM examples from the same files
MIN_STEPS = 100
MAX_STEPS = 5000
# LoRA rank by train tokens: (below this many tokens, rank).
RANKS = ((2_000_000, 8), (20_000_000, 16), (200_000_000, 32))
TOP_RANK = 64
# LoRA on a 1B-parameter base learns well at 2e-4; smaller bases take larger steps.
LORA_LR_AT_1B, LORA_LR_RANGE = 2e-4, (1e-4, 3e-3)
FULL_LR_AT_1B, FULL_LR_RANGE = 2e-5, (1e-5, 3e-4)


class ChosenHyperparameters(BaseModel):
    """What a run trains with, and which values were chosen by Tailor rather than the spec."""

    train_tokens: int | None = Field(description="Tokens in one pass over the train split.")
    tokens_per_step: int = Field(description="seq_len x micro_batch x grad_accum.")
    epochs: float | None = Field(description="Passes over the train split (None: max_steps).")
    steps: int | None = Field(description="Optimizer steps.")
    learning_rate: float = Field(description="Peak learning rate.")
    lora_r: int = Field(description="LoRA rank (unused by full fine-tuning).")
    lora_alpha: int = Field(description="LoRA scaling numerator.")
    auto: list[str] = Field(description="Fields the spec left 'auto' and Tailor chose.")
    reason: str = Field(description="Why these values, in one sentence.")


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def choose_epochs(train_tokens: int, tokens_per_step: int) -> float:
    """About three epochs, more for a small dataset (>= MIN_STEPS), fewer for a large one."""
    steps_per_epoch = max(train_tokens, 1) / tokens_per_step
    if TARGET_EPOCHS * steps_per_epoch < MIN_STEPS:  # rounded up: at least MIN_STEPS
        return min(MAX_EPOCHS, math.ceil(100 * MIN_STEPS / steps_per_epoch) / 100)
    if TARGET_EPOCHS * steps_per_epoch > MAX_STEPS:  # rounded down: at most MAX_STEPS
        return max(1.0, math.floor(100 * MAX_STEPS / steps_per_epoch) / 100)
    return TARGET_EPOCHS


def choose_rank(train_tokens: int) -> int:
    """A LoRA rank that grows with the data: few parameters for a small repository."""
    return next((rank for limit, rank in RANKS if train_tokens < limit), TOP_RANK)


def choose_learning_rate(method: str, base_params: int | None) -> float:
    """A peak learning rate for the method, scaled by 1/sqrt of the base's size."""
    at_1b, bounds = (
        (FULL_LR_AT_1B, FULL_LR_RANGE) if method == "full" else (LORA_LR_AT_1B, LORA_LR_RANGE)
    )
    if not base_params:
        return at_1b
    return float(f"{_clamp(at_1b * math.sqrt(1e9 / base_params), bounds):.2g}")


def choose(
    spec: TrainSpec, train_tokens: int | None, base_params: int | None
) -> ChosenHyperparameters:
    """The values a run uses: the spec's where it sets them, chosen ones where it says auto."""
    per_step = spec.seq_len * spec.micro_batch * spec.grad_accum
    auto = [f for f in AUTO_FIELDS if getattr(spec, f) is None]
    epochs: float | None = None
    if spec.max_steps is not None:
        steps = spec.max_steps
    elif train_tokens is None:
        raise ValueError("choosing the step count needs the train split's token count")
    else:
        epochs = spec.epochs or choose_epochs(train_tokens, per_step)
        steps = max(1, math.floor(epochs * train_tokens / per_step))
    rank = spec.lora_r or choose_rank(train_tokens or 0)
    alpha = spec.lora_alpha or 2 * rank
    lr = spec.learning_rate or choose_learning_rate(spec.method, base_params)
    size = f"{train_tokens:,} train tokens" if train_tokens is not None else "max_steps set"
    model = f"a {base_params / 1e6:,.1f}M-parameter base" if base_params else "an unsized base"
    reason = (
        f"{size} at {per_step:,} tokens a step and {model}: "
        f"{steps} steps ({epochs if epochs is not None else '-'} epochs), lr {lr:g}, rank {rank}"
    )
    return ChosenHyperparameters(
        train_tokens=train_tokens,
        tokens_per_step=per_step,
        epochs=epochs,
        steps=steps,
        learning_rate=lr,
        lora_r=rank,
        lora_alpha=alpha,
        auto=auto,
        reason=reason,
    )


def apply(spec: TrainSpec, chosen: ChosenHyperparameters) -> TrainSpec:
    """The spec with every auto field replaced by its chosen value (and the steps fixed)."""
    return spec.model_copy(
        update={
            "epochs": chosen.epochs if chosen.epochs is not None else spec.epochs,
            "max_steps": chosen.steps,
            "learning_rate": chosen.learning_rate,
            "lora_r": chosen.lora_r,
            "lora_alpha": chosen.lora_alpha,
        }
    )


def estimate_params(config: Any) -> int | None:
    """Parameters of a decoder from its config (embeddings + 12 x layers x width^2)."""
    width = getattr(config, "hidden_size", None)
    layers = getattr(config, "num_hidden_layers", None)
    vocab = getattr(config, "vocab_size", None)
    if not (width and layers and vocab):
        return None
    return int(vocab * width + 12 * layers * width * width)
