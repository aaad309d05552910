"""Blocking `stream` and `generate` on top of any backend's `submit(request, sink)`."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator

from tailor.serve.generation import (
    ChunkSink,
    Generation,
    GenerationChunk,
    GenerationRequest,
    Ticket,
)

Submit = Callable[[GenerationRequest, ChunkSink], Ticket]


def stream_chunks(submit: Submit, request: GenerationRequest) -> Iterator[GenerationChunk]:
    """Chunks as they are generated; closing the iterator early cancels the request."""
    inbox: queue.SimpleQueue[GenerationChunk | Exception] = queue.SimpleQueue()
    ticket = submit(request, inbox.put)
    open_choices = request.n
    try:
        while open_choices:
            item = inbox.get()
            if isinstance(item, Exception):
                raise item
            if item.finish_reason is not None:
                open_choices -= 1
            yield item
    finally:
        if open_choices:
            ticket.cancel()


def collect(chunks: Iterator[GenerationChunk], n: int) -> list[Generation]:
    """Whole generations, one per choice, from a stream of chunks."""
    texts: list[list[str]] = [[] for _ in range(n)]
    done: dict[int, GenerationChunk] = {}
    logprobs: list[list] = [[] for _ in range(n)]
    for chunk in chunks:
        texts[chunk.index].append(chunk.text)
        logprobs[chunk.index].extend(chunk.logprobs)
        if chunk.finish_reason is not None:
            done[chunk.index] = chunk
    return [
        Generation(
            text="".join(texts[i]),
            finish_reason=done[i].finish_reason or "stop",
            completion_tokens=done[i].completion_tokens,
            prompt_tokens=done[i].prompt_tokens,
            logprobs=logprobs[i] or None,
        )
        for i in range(n)
    ]
