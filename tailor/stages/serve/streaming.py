"""Chunks made whole generations (one collector for every reader), and blocking `stream` and
`generate` on top of any backend's `submit(request, sink)`."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator

from tailor.stages.serve.generation import (
    ChunkSink,
    Generation,
    GenerationChunk,
    GenerationRequest,
    Ticket,
    TokenLogprob,
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


class ChunkCollector:
    """Whole generations, one per choice, assembled from a request's chunks as they come."""

    def __init__(self, n: int) -> None:
        self._texts: list[list[str]] = [[] for _ in range(n)]
        self._logprobs: list[list[TokenLogprob]] = [[] for _ in range(n)]
        self._ends: dict[int, GenerationChunk] = {}

    def add(self, chunk: GenerationChunk) -> None:
        """Take one chunk of any choice."""
        self._texts[chunk.index].append(chunk.text)
        self._logprobs[chunk.index].extend(chunk.logprobs)
        if chunk.finish_reason is not None:
            self._ends[chunk.index] = chunk

    def generations(self) -> list[Generation]:
        """Every choice whole; call once every choice has sent its last chunk."""
        return [
            Generation(
                text="".join(texts),
                finish_reason=self._ends[i].finish_reason or "stop",
                completion_tokens=self._ends[i].completion_tokens,
                prompt_tokens=self._ends[i].prompt_tokens,
                logprobs=self._logprobs[i] or None,
            )
            for i, texts in enumerate(self._texts)
        ]


def collect(chunks: Iterator[GenerationChunk], n: int) -> list[Generation]:
    """Whole generations, one per choice, from a stream of chunks."""
    collector = ChunkCollector(n)
    for chunk in chunks:
        collector.add(chunk)
    return collector.generations()
