"""The engine-thread-to-event-loop hand-off: few wake-ups, nothing lost, deadlines kept."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tailor.stages.serve.generation import GenerationChunk
from tailor.stages.serve.handoff import ChunkInbox, merge_chunks


def chunk(text: str, index: int = 0, end: bool = False) -> GenerationChunk:
    return GenerationChunk(index=index, text=text, finish_reason="stop" if end else None)


def produce(inbox: ChunkInbox, chunks: list[GenerationChunk], gap_s: float) -> threading.Thread:
    """Put `chunks` from another thread, as the engine does, `gap_s` apart."""

    def run() -> None:
        for item in chunks:
            inbox.put(item)
            time.sleep(gap_s)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


async def read_all(inbox: ChunkInbox) -> list[list[GenerationChunk | Exception]]:
    """Every take() until the last chunk, as the serving app reads a request."""
    takes: list[list[GenerationChunk | Exception]] = []
    while not takes or not any(
        isinstance(i, GenerationChunk) and i.finish_reason for i in takes[-1]
    ):
        takes.append(await inbox.take())
    return takes


def test_a_non_streaming_reader_is_woken_once_with_the_whole_text() -> None:
    async def main() -> list[list[GenerationChunk | Exception]]:
        inbox = ChunkInbox(asyncio.get_running_loop(), time.perf_counter() + 10, interval=None)
        thread = produce(inbox, [chunk("a"), chunk("b"), chunk("c", end=True)], 0.01)
        takes = await read_all(inbox)
        thread.join()
        return takes

    takes = asyncio.run(main())
    assert takes == [[chunk("abc", end=True)]]


def test_a_stream_gets_its_first_chunk_at_once_and_the_rest_merged_per_interval() -> None:
    async def main() -> tuple[list[list[GenerationChunk | Exception]], float]:
        inbox = ChunkInbox(asyncio.get_running_loop(), time.perf_counter() + 10, interval=0.2)
        parts = [chunk(str(i)) for i in range(8)] + [chunk("!", end=True)]
        started = time.perf_counter()
        thread = produce(inbox, parts, 0.01)
        first = await inbox.take()
        waited = time.perf_counter() - started
        takes = [first, *await read_all(inbox)]
        thread.join()
        return takes, waited

    takes, waited = asyncio.run(main())
    assert takes[0] == [chunk("0")] and waited < 0.2
    assert len(takes) <= 3  # 9 chunks 10 ms apart: the first, then (about) one per 200 ms
    text = "".join(c.text for take in takes for c in take if isinstance(c, GenerationChunk))
    assert text == "01234567!"


def test_a_reader_past_its_deadline_gets_a_timeout() -> None:
    async def main() -> None:
        inbox = ChunkInbox(asyncio.get_running_loop(), time.perf_counter() + 0.05, interval=0.0)
        await inbox.take()

    with pytest.raises(TimeoutError):
        asyncio.run(main())


def test_merging_joins_one_choice_and_keeps_choices_and_ends_apart() -> None:
    error = RuntimeError("boom")
    merged = merge_chunks(
        [chunk("a"), chunk("b"), chunk("x", index=1), chunk("c", end=True), chunk("d"), error]
    )
    assert merged == [chunk("ab"), chunk("x", index=1), chunk("c", end=True), chunk("d"), error]
