"""Chunks become whole generations the same way for the engine's `generate` and the app."""

from __future__ import annotations

from tailor.stages.serve.generation import GenerationChunk, TokenLogprob
from tailor.stages.serve.streaming import collect


def test_interleaved_choices_come_out_whole_in_index_order() -> None:
    logprob = TokenLogprob(token="b", logprob=-0.5)
    chunks = [
        GenerationChunk(index=1, text="x"),
        GenerationChunk(index=0, text="a"),
        GenerationChunk(
            index=1, text="y", finish_reason="length", prompt_tokens=3, completion_tokens=2
        ),
        GenerationChunk(
            index=0,
            text="b",
            finish_reason="stop",
            prompt_tokens=3,
            completion_tokens=2,
            logprobs=[logprob],
        ),
    ]

    gens = collect(iter(chunks), 2)

    assert [(g.text, g.finish_reason, g.completion_tokens) for g in gens] == [
        ("ab", "stop", 2),
        ("xy", "length", 2),
    ]
    assert gens[0].logprobs == [logprob]
    assert gens[1].logprobs is None
