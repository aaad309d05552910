"""Hyperparameters left "auto" (null) in a TrainSpec, chosen from the dataset's size and the base's.

As hosted fine-tuning APIs do: about three epochs, more for a small repository (so it still
gets enough optimizer steps to learn from) and fewer for a large one (bounded time); a LoRA
rank that grows with the data; a learning rate that shrinks as the base model grows; the
output head among the LoRA targets where it holds a large share of the base's weights. The
choice is a pure function of a few numbers, recorded on the job with the reason.

Only pydantic and the standard library at import: the API imports the spec, not this module,
but `choose` stays cheap to test.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from tailor.stages.train.spec import AUTO_FIELDS, OUTPUT_HEAD, TrainSpec, default_lora_targets

TARGET_EPOCHS = 3.0
MAX_EPOCHS = 50.0  # a small repository: each epoch cuts new FIM examples from the same files
# A small repository still gets this many optimizer steps. On the stand-in base with a team's
# house-style code (25k train tokens, 1,024 tokens a step) 100 steps left the served FIM edit
# similarity level with the base's (-0.7 points); 300 steps (rank 32 with the head, below)
# raised it by 11 to 13 points.
MIN_STEPS = 300
MAX_STEPS = 5000
# LoRA rank by train tokens: (below this many tokens, rank).
RANKS = ((2_000_000, 8), (20_000_000, 16), (200_000_000, 32))
TOP_RANK = 64
# An adapted output head carries the team's vocabulary (its names, its house phrases) and needs
# more rank than the blocks. On the stand-in base, 300 steps at rank 8 took the held-out loss
# of a team's code from 6.86 to 2.82 and left greedy completions in loops (served FIM edit
# similarity -0.5 points, seed 0); rank 32 reached 1.73 and +12.8 (seeds 1, 2: +11.7, +11.2).
HEAD_RANK = 32
# LoRA on a 1B-parameter base learns well at 2e-4; smaller bases take larger steps.
LORA_LR_AT_1B, LORA_LR_RANGE = 2e-4, (1e-4, 3e-3)
FULL_LR_AT_1B, FULL_LR_RANGE = 2e-5, (1e-5, 3e-4)
# Above this share of the base's weights in the output head (vocabulary x width), LoRA adapts
# the head too. On the 0.9M-parameter stand-in base (head 57 %) adapters on the blocks alone
# took the held-out loss of a team's code from 6.83 to 5.67 in 300 steps, with the head to
# 2.30, and the served FIM edit similarity gain went from +2.2 to +8.4 points. Real code
# models are far below the share (StarCoderBase-1B 9 %, Qwen2.5-Coder-0.5B 28 %) and keep
# the usual attention and MLP targets.
HEAD_SHARE_FOR_LORA = 1 / 3


class ChosenHyperparameters(BaseModel):
    """What a run trains with, and which values were chosen by Tailor rather than the spec."""

    train_tokens: int | None = Field(description="Tokens in one pass over the train split.")
    tokens_per_step: int = Field(description="seq_len x micro_batch x grad_accum.")
    epochs: float | None = Field(description="Passes over the train split (None: max_steps).")
    steps: int | None = Field(description="Optimizer steps.")
    learning_rate: float = Field(description="Peak learning rate.")
    lora_r: int = Field(description="LoRA rank (unused by full fine-tuning).")
    lora_alpha: int = Field(description="LoRA scaling numerator.")
    lora_target_modules: list[str] | None = Field(
        None, description="Modules LoRA adapts (None: full fine-tuning or no default known)."
    )
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


def choose_rank(train_tokens: int, adapts_head: bool = False) -> int:
    """A LoRA rank that grows with the data (few parameters for a small repository), and at
    least HEAD_RANK where the output head is adapted."""
    rank = next((rank for limit, rank in RANKS if train_tokens < limit), TOP_RANK)
    return max(rank, HEAD_RANK) if adapts_head else rank


def choose_learning_rate(method: str, base_params: int | None) -> float:
    """A peak learning rate for the method, scaled by 1/sqrt of the base's size."""
    at_1b, bounds = (
        (FULL_LR_AT_1B, FULL_LR_RANGE) if method == "full" else (LORA_LR_AT_1B, LORA_LR_RANGE)
    )
    if not base_params:
        return at_1b
    return float(f"{_clamp(at_1b * math.sqrt(1e9 / base_params), bounds):.2g}")


def choose_targets(
    method: str, model_type: str | None, head_share: float | None
) -> list[str] | None:
    """The architecture's LoRA targets, with the output head where it is a large share."""
    targets = default_lora_targets(model_type or "") if method != "full" else None
    if targets is not None and head_share is not None and head_share > HEAD_SHARE_FOR_LORA:
        targets.append(OUTPUT_HEAD)
    return targets


def choose(
    spec: TrainSpec,
    train_tokens: int | None,
    base_params: int | None,
    *,
    model_type: str | None = None,
    head_share: float | None = None,
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
    targets = spec.lora_target_modules or choose_targets(spec.method, model_type, head_share)
    adapts_head = bool(targets and OUTPUT_HEAD in targets)
    rank = spec.lora_r or choose_rank(train_tokens or 0, adapts_head)
    alpha = spec.lora_alpha or 2 * rank
    lr = spec.learning_rate or choose_learning_rate(spec.method, base_params)
    size = f"{train_tokens:,} train tokens" if train_tokens is not None else "max_steps set"
    model = f"a {base_params / 1e6:,.1f}M-parameter base" if base_params else "an unsized base"
    reason = (
        f"{size} at {per_step:,} tokens a step and {model}: "
        f"{steps} steps ({epochs if epochs is not None else '-'} epochs), lr {lr:g}, rank {rank}"
    )
    if adapts_head and head_share is not None:
        reason += f", output head adapted ({head_share:.0%} of the base's weights)"
    return ChosenHyperparameters(
        train_tokens=train_tokens,
        tokens_per_step=per_step,
        epochs=epochs,
        steps=steps,
        learning_rate=lr,
        lora_r=rank,
        lora_alpha=alpha,
        lora_target_modules=targets,
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
            "lora_target_modules": chosen.lora_target_modules,
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


def head_share(config: Any) -> float | None:
    """The share of a decoder's parameters in its output head (vocabulary x width)."""
    params = estimate_params(config)
    return config.vocab_size * config.hidden_size / params if params else None
