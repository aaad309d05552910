"""A request in flight on the event loop, from submit to close: its chunks as they arrive,
its deadline, its rate-limit reservation and its metrics; and the responses built on it."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse

from tailor.stages.serve.admission import Call, prompt_ids, reserve
from tailor.stages.serve.deps import ServingState
from tailor.stages.serve.errors import ServeError, model_not_found, overloaded
from tailor.stages.serve.generation import (
    Generation,
    GenerationChunk,
    GenerationRequest,
    OverloadedError,
    QueueTimeoutError,
)
from tailor.stages.serve.handoff import ChunkInbox
from tailor.stages.serve.limits import retry_after_header
from tailor.stages.serve.lora_cache import AdapterNotFoundError
from tailor.stages.serve.protocol import new_id
from tailor.stages.serve.streaming import ChunkCollector
from tailor.telemetry.records import FIM_HOLE, Served


class Stream:
    """A submitted request whose chunks arrive on the event loop; it holds its rate-limit
    reservation until `close` settles it."""

    def __init__(
        self,
        state: ServingState,
        call: Call,
        req: GenerationRequest,
        *,
        streaming: bool,
        kind: str = "cmpl",
        language: str | None = None,
    ) -> None:
        self.state, self.call, self.req = state, call, req
        self.id, self.language = new_id(kind), language  # what telemetry records it under
        interval = state.stream_interval_s if streaming else None
        self.inbox = ChunkInbox(asyncio.get_running_loop(), call.deadline, interval=interval)
        self.ready: deque[GenerationChunk | Exception] = deque()
        self.open = req.n
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.status = "200"
        self.refused = False  # the backend shed it before it started: it costs nothing
        # The text of choice 0, for a team whose telemetry keeps code (None: not kept).
        self.text: list[str] | None = [] if call.who is not None and call.who.keeps_code else None
        ids = prompt_ids(state, req)
        self.reservation = reserve(state, call, len(ids) + req.n * req.max_new_tokens)
        try:
            self.ticket = state.backend.submit(req, self.inbox.put, prompt_ids=ids)
        except OverloadedError as exc:
            state.limiter.refund(self.reservation)
            state.metrics.refused.labels(call.team, "queue_full").inc()
            raise overloaded("overloaded", str(exc), retry_after_header(exc.retry_after_s)) from exc
        except BaseException:
            state.limiter.refund(self.reservation)
            raise
        state.in_flight += 1
        state.metrics.in_flight.inc()

    async def next(self) -> GenerationChunk | None:
        """The next chunk, None once every choice has finished; errors become ServeErrors."""
        if not self.open:
            return None
        if not self.ready:
            try:
                self.ready.extend(await self.inbox.take())
            except TimeoutError:
                raise self._timed_out() from None
        elif time.perf_counter() > self.call.deadline:
            raise self._timed_out()  # chunks keep coming, but the request's time is up
        item = self.ready.popleft()
        if isinstance(item, AdapterNotFoundError):
            raise model_not_found(self.call.model)
        if isinstance(item, QueueTimeoutError):
            self.refused = True
            self.state.metrics.refused.labels(self.call.team, "queue_timeout").inc()
            raise overloaded("queue_timeout", str(item), retry_after_header(item.retry_after_s))
        if isinstance(item, Exception):
            raise ServeError(500, "generation_failed", f"generation failed: {item}") from item
        if self.call.first_chunk is None:
            self.call.first_chunk = time.perf_counter()
        if self.text is not None and item.index == 0:
            self.text.append(item.text)
        if item.finish_reason is not None:
            self.open -= 1
            self.prompt_tokens = item.prompt_tokens
            self.completion_tokens += item.completion_tokens
        return item

    def _timed_out(self) -> ServeError:
        self.ticket.cancel()
        return ServeError(
            504,
            "request_timeout",
            f"the request ran past this endpoint's {self.call.limits.request_timeout_s}s "
            "limit; ask for fewer tokens",
        )

    def has_ready(self) -> bool:
        """True when `next` would answer without waiting."""
        self.ready.extend(self.inbox.drain())
        return bool(self.ready) or not self.open

    async def collect(self) -> list[Generation]:
        """Every choice whole (the non-streaming answer)."""
        collector = ChunkCollector(self.req.n)
        while (chunk := await self.next()) is not None:
            collector.add(chunk)
        return collector.generations()

    def close(self, error: ServeError | None = None) -> None:
        """Cancel what is still running, settle the rate limits, record the metrics."""
        self.inbox.close()
        if self.open:
            self.ticket.cancel()
        if self.refused:
            self.state.limiter.refund(self.reservation)
        else:
            self.state.limiter.settle(self.reservation, self.ticket.tokens_used())
        if error is not None:
            self.status = str(error.status)
        m, c = self.state.metrics, self.call
        labels = (c.team, c.model)
        m.requests.labels(*labels, c.route, self.status).inc()
        m.prompt_tokens.labels(*labels).inc(self.prompt_tokens)
        m.completion_tokens.labels(*labels).inc(self.completion_tokens)
        if c.first_chunk is not None:
            m.ttft.labels(*labels).observe(c.first_chunk - c.started)
        latency = time.perf_counter() - c.started
        m.latency.labels(*labels).observe(latency)
        m.in_flight.dec()
        self.state.in_flight -= 1
        if self.status == "200":
            self._record(latency)

    def _record(self, latency_s: float) -> None:
        """Queue the served completion for telemetry (where the caller is the database's)."""
        who, recorder = self.call.who, self.state.telemetry
        if recorder is None or who is None or who.team_id is None:
            return
        recorder.served(
            Served(
                id=self.id,
                team_id=who.team_id,
                user_id=who.member_id,
                version_id=who.version_id,
                model=self.call.model,
                route=self.call.route,
                language=self.language,
                latency_ms=latency_s * 1000,
                prompt_tokens=self.prompt_tokens,
                completion_tokens=self.completion_tokens,
                prompt_text=self._prompt_text(),
                completion_text=None if self.text is None else "".join(self.text),
            )
        )

    def _prompt_text(self) -> str | None:
        """The prompt, where the team keeps code (redacted when written); FIM's hole marked."""
        if self.text is None:
            return None
        if self.req.suffix is None:
            return self.req.prompt
        return self.req.prompt + FIM_HOLE + self.req.suffix


async def answer(stream: Stream) -> list[Generation]:
    """The whole answer of a non-streaming request; the stream is closed either way."""
    try:
        gens = await stream.collect()
    except ServeError as err:
        stream.close(err)
        raise
    stream.close()
    return gens


async def first(stream: Stream) -> GenerationChunk | None:
    """Wait for the first chunk before sending headers, so early errors keep their status."""
    try:
        return await stream.next()
    except ServeError as err:
        stream.close(err)
        raise


async def chunks(stream: Stream, head: GenerationChunk | None) -> AsyncIterator[GenerationChunk]:
    """All chunks of a stream, the already-awaited first one (`head`) included; always closes it."""
    error: ServeError | None = None
    try:
        chunk = head
        while chunk is not None:
            yield chunk
            chunk = await stream.next()
    except ServeError as err:
        error = err
        raise
    finally:
        stream.close(error)


# The completion's id in a header on every stream and on TGI's and Ollama's whole answers:
# their bodies have no id field, and an editor integration needs it to report what became of
# the completion (`POST /v1/completions/{id}/feedback`); OpenAI and Tabby bodies carry it.
COMPLETION_ID_HEADER = "X-Completion-Id"


def id_header(stream: Stream) -> dict[str, str]:
    """The header naming the completion a response carries."""
    return {COMPLETION_ID_HEADER: stream.id}


def json_response(stream: Stream, body: Any) -> JSONResponse:
    """A whole answer, with its completion's id in the header."""
    return JSONResponse(body, headers=id_header(stream))


def sse_response(stream: Stream, body: AsyncIterator[bytes]) -> StreamingResponse:
    """Server-sent events of a stream, written as few times as the chunks allow."""
    return StreamingResponse(
        _coalesced(stream, body),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **id_header(stream)},
    )


def ndjson_response(stream: Stream, body: AsyncIterator[bytes]) -> StreamingResponse:
    """Newline-delimited JSON of a stream (Ollama's), written as few times as the chunks allow."""
    return StreamingResponse(
        _coalesced(stream, body),
        media_type="application/x-ndjson",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **id_header(stream)},
    )


async def _coalesced(stream: Stream, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """One write for the events of every chunk already here (a lagging loop catches up at once)."""
    parts: list[bytes] = []
    async for event in events:
        parts.append(event)
        if not stream.has_ready():
            yield b"".join(parts)
            parts.clear()
    if parts:
        yield b"".join(parts)
