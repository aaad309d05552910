"""Choosing the next token of one sequence: greedy, or temperature + nucleus with its own RNG."""

from __future__ import annotations

from collections.abc import Collection

import torch


def next_token(
    logits: torch.Tensor,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None,
    banned: Collection[int] = (),
) -> int:
    """The next token id from one row of logits (shape [vocab])."""
    logits = logits.float()
    if banned:
        logits = logits.clone()
        logits[list(banned)] = float("-inf")
    if temperature <= 0.0:
        return int(torch.argmax(logits).item())
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest head whose mass reaches top_p (the first token always stays).
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def token_logprobs(
    logits: torch.Tensor, token: int, top: int
) -> tuple[float, list[tuple[int, float]]]:
    """The chosen token's log-probability under the model, and the `top` most likely ones."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    best = torch.topk(logp, top) if top else None
    pairs = [(int(i), float(v)) for v, i in zip(*best, strict=True)] if best is not None else []
    return float(logp[token].item()), pairs


def rng_for(seed: int | None, choice: int) -> torch.Generator:
    """A generator for one choice: seeded => reproducible; choices of one request differ."""
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed + choice)
    return gen
