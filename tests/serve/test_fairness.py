"""One team cannot stall another: the engine shares its batch between teams, and its queue is
bounded (refused or expired requests answer 503 with Retry-After and cost nothing).

The reviewer's attack, scaled down so that it is deterministic: one team floods a 4-row batch
with long many-choice requests, another sends one ordinary completion. What is asserted is the
order in which the engine admitted and finished choices, never wall time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tailor.stages.serve.app import create_serving_app
from tailor.stages.serve.callers import lookup_from
from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.generation import (
    GenerationChunk,
    GenerationRequest,
    QueueFullError,
    QueueTimeoutError,
    Ticket,
)
from tailor.stages.serve.spec import EndpointLimits
from tailor.storage import FileStore

from .conftest import LiveServer, start_server

ROWS = 4
QUEUED = 8
QUEUE_TIMEOUT_S = 5.0
LONG = {"ignore_eos": True, "stop_at_block_end": False}


class Clock:
    """The engine's clock: still unless a test moves it (queue deadlines on demand)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sink:
    """Collects one request's chunks as the engine hands them over."""

    def __init__(self) -> None:
        self.items: list[GenerationChunk | Exception] = []
        self.done = threading.Event()

    def __call__(self, item: GenerationChunk | Exception) -> None:
        self.items.append(item)
        if isinstance(item, Exception) or item.finish_reason is not None:
            self.done.set()


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def small(
    tiny_base: Path, tmp_path_factory: pytest.TempPathFactory, clock: Clock
) -> Iterator[TailorEngine]:
    """An engine with a 4-row batch, room for 8 waiting choices per team, a movable clock."""
    eng = TailorEngine(
        str(tiny_base),
        FileStore(tmp_path_factory.mktemp("fair-objects")),
        max_batch_size=ROWS,
        max_queued_per_team=QUEUED,
        queue_timeout_s=QUEUE_TIMEOUT_S,
        clock=clock,
    ).start()
    eng.wait_ready(120)
    yield eng
    eng.close()


def long_request(team: str, n: int = ROWS, tokens: int = 300) -> GenerationRequest:
    return GenerationRequest(prompt="def f(x):\n", max_new_tokens=tokens, n=n, team=team, **LONG)  # type: ignore[arg-type]


def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait for the engine to reach a state (a guard against hanging, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.005)


@pytest.fixture
def engine_idle(small: TailorEngine) -> Iterator[TailorEngine]:
    """The small engine, left with nothing running after the test."""
    tickets: list[object] = []
    submit = small.submit

    def tracked(*args: object, **kw: object) -> object:
        ticket = submit(*args, **kw)  # type: ignore[arg-type]
        tickets.append(ticket)
        return ticket

    small.submit = tracked  # type: ignore[method-assign]
    try:
        yield small
    finally:
        small.submit = submit  # type: ignore[method-assign]
        for ticket in tickets:
            ticket.cancel()  # type: ignore[attr-defined]
        until(lambda: small.active_sequences() == 0, "the engine is idle again")


def test_a_flooding_teams_burst_does_not_delay_another_teams_completion(
    engine_idle: TailorEngine,
) -> None:
    eng = engine_idle
    first = len(eng.admitted)
    floods = [Sink(), Sink()]
    for sink in floods:
        eng.submit(long_request("flood"), sink)
    until(lambda: eng.batch_shares() == {"flood": ROWS}, "the flood fills the batch")
    ide = Sink()
    eng.submit(GenerationRequest(prompt="x = ", max_new_tokens=8, team="ide", **LONG), ide)  # type: ignore[arg-type]
    until(ide.done.is_set, "the ide completion ends")

    admitted = list(eng.admitted)[first:]
    ide_at = next(i for i, a in enumerate(admitted) if a.team == "ide")
    fresh_flood_before = [a for a in admitted[:ide_at] if a.team == "flood" and not a.resumed]
    assert len(fresh_flood_before) == ROWS  # the 4 waiting flood choices did not go first
    assert not any(f.done.is_set() for f in floods)  # it ended while the flood still ran
    assert ide.items[-1].completion_tokens == 8  # type: ignore[union-attr]


def test_a_preempted_choice_resumes_where_it_was_and_writes_the_same_text(
    engine_idle: TailorEngine,
) -> None:
    eng = engine_idle
    alone = [g.text for g in eng.generate(long_request("flood", tokens=120))]
    first = len(eng.admitted)
    texts: dict[int, str] = {}
    ends: list[GenerationChunk] = []

    def sink(item: GenerationChunk | Exception) -> None:
        assert isinstance(item, GenerationChunk)
        texts[item.index] = texts.get(item.index, "") + item.text
        if item.finish_reason:
            ends.append(item)

    eng.submit(long_request("flood", tokens=120), sink)
    until(lambda: eng.batch_shares() == {"flood": ROWS}, "the flood fills the batch")
    eng.submit(GenerationRequest(prompt="y", max_new_tokens=4, team="ide", **LONG), Sink())  # type: ignore[arg-type]
    until(lambda: len(ends) == ROWS, "every flood choice ends")

    resumed = [a for a in list(eng.admitted)[first:] if a.resumed]
    assert [a.team for a in resumed] == ["flood"]  # stepped aside once, then came back
    assert [texts[i] for i in range(ROWS)] == alone
    assert [c.completion_tokens for c in ends] == [120] * ROWS


def test_two_bursts_share_the_batch_equally(engine_idle: TailorEngine) -> None:
    eng = engine_idle
    eng.submit(long_request("flood"), Sink())
    eng.submit(long_request("flood"), Sink())
    until(lambda: eng.batch_shares() == {"flood": ROWS}, "the flood fills the batch")
    eng.submit(long_request("batch"), Sink())
    until(lambda: eng.batch_shares() == {"flood": 2, "batch": 2}, "the batch is shared")


def test_a_team_over_its_queue_is_refused_while_another_team_still_queues(
    engine_idle: TailorEngine,
) -> None:
    eng = engine_idle
    eng.submit(long_request("flood"), Sink())
    until(lambda: eng.batch_shares() == {"flood": ROWS}, "the flood fills the batch")
    for _ in range(QUEUED // ROWS):
        eng.submit(long_request("flood"), Sink())  # waiting: the batch is the flood's own
    with pytest.raises(QueueFullError) as refused:
        eng.submit(long_request("flood", n=1), Sink())
    other = Sink()
    eng.submit(GenerationRequest(prompt="z", max_new_tokens=2, team="ide", **LONG), other)  # type: ignore[arg-type]
    until(other.done.is_set, "the other team's request ends")
    assert refused.value.retry_after_s > 0
    assert isinstance(other.items[-1], GenerationChunk)


def test_a_request_that_cannot_start_in_time_is_dropped_with_a_retry_hint(
    engine_idle: TailorEngine, clock: Clock
) -> None:
    eng = engine_idle
    eng.submit(long_request("flood"), Sink())
    until(lambda: eng.batch_shares() == {"flood": ROWS}, "the flood fills the batch")
    late = Sink()
    eng.submit(long_request("flood", n=2), late)
    clock.now += QUEUE_TIMEOUT_S + 1
    until(late.done.is_set, "the waiting request is dropped")
    assert isinstance(late.items[0], QueueTimeoutError)
    assert late.items[0].retry_after_s > 0
    assert [f.reason for f in list(eng.finished)[-2:]] == ["queue_timeout"] * 2
    assert eng.batch_shares() == {"flood": ROWS}  # what was running was left alone


# -- through HTTP ------------------------------------------------------------------------------


@pytest.fixture
def small_server(engine_idle: TailorEngine) -> Iterator[LiveServer]:
    """The small engine served to team `flood`, allowed one request a minute."""
    limits = EndpointLimits(requests_per_minute=1, max_tokens=400, request_timeout_s=60)
    lookup = lookup_from({"tok-flood": "flood"}.get, lambda t, m: None)
    app = create_serving_app(engine_idle, lookup=lookup, limits=limits)
    live = start_server(app)
    yield live
    live.stop()


def flood_queue_full(eng: TailorEngine) -> list[Ticket]:
    """The flood's own choices in every row and as many waiting as it may have."""
    tickets = [eng.submit(long_request("flood"), Sink())]
    until(lambda: eng.batch_shares() == {"flood": ROWS}, "the flood fills the batch")
    tickets += [eng.submit(long_request("flood"), Sink()) for _ in range(QUEUED // ROWS)]
    return tickets


def complete(url: str, **body: object) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/completions",
        headers={"Authorization": "Bearer tok-flood"},
        json={"model": "<base>", "prompt": "x", "max_tokens": 4, **body},
        timeout=60,
    )


def test_a_full_queue_answers_503_with_retry_after_and_costs_nothing(
    engine_idle: TailorEngine, small_server: LiveServer
) -> None:
    tickets = flood_queue_full(engine_idle)
    refused = complete(small_server.url)
    for ticket in tickets:
        ticket.cancel()
    until(lambda: engine_idle.active_sequences() == 0, "the flood is cancelled")
    after = complete(small_server.url)  # the team's one request a minute is still there
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["type"] == "https://tailor.dev/problems/overloaded"
    assert after.status_code == 200


def test_a_request_that_waits_past_the_queue_timeout_answers_503(
    engine_idle: TailorEngine, small_server: LiveServer, clock: Clock
) -> None:
    engine_idle.submit(long_request("flood"), Sink())
    until(lambda: engine_idle.batch_shares() == {"flood": ROWS}, "the flood fills the batch")
    answer: list[httpx.Response] = []
    waiting = threading.Thread(
        target=lambda: answer.append(complete(small_server.url, stream=True))
    )
    waiting.start()
    until(lambda: engine_idle.active_sequences() == ROWS + 1, "the request waits in the queue")
    clock.now += QUEUE_TIMEOUT_S + 1
    waiting.join(60)
    (refused,) = answer
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["type"] == "https://tailor.dev/problems/queue-timeout"
