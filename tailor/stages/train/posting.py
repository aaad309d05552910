"""Cluster mode: the entrypoint's events also go to the API, in batches, in order.

Training never waits for the API and never fails because of it. A batch that cannot be sent
(the API is down, a timeout, a 5xx) is retried with backoff, newer events queueing behind it.
What is dropped, and said on stderr (the pod's log): the oldest events beyond `max_backlog`
while the API stays unreachable (the next batch that gets through starts with a log line
counting them), a batch the API refuses as malformed (422), everything once the API refuses
the token or says the job is over (401, 404, 409), and whatever is still unsent
`final_wait_s` after training ended. A batch whose answer was lost may be stored twice.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from tailor.stages.train.protocol import EVENTS_URL_ENV, JOB_TOKEN_ENV

# Answers after which nothing more is sent: the token is refused, or the job is gone or over.
_GIVE_UP = frozenset({401, 403, 404, 409})
_RETRY = frozenset({408, 425, 429})


class EventPoster:
    """Sends events to one job's events URL from a background thread."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        batch_size: int = 100,
        flush_s: float = 1.0,
        max_backlog: int = 10_000,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        final_wait_s: float = 30.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.batch_size, self.flush_s, self.max_backlog = batch_size, flush_s, max_backlog
        self.backoff_s, self.final_wait_s = backoff_s, final_wait_s
        self.dropped = 0  # events that never reached the API
        self.failed_sends = 0  # batches sent again later (API down, timeout, 5xx)
        self._unreported = 0  # dropped from the backlog, not yet told to the job's log
        self._pending: deque[tuple[int, dict[str, Any]]] = deque()
        self._seq = 0
        self._wake = threading.Condition()
        self._closing = False
        self._gave_up = False
        self._client = httpx.Client(
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        self._thread = threading.Thread(target=self._run, name="event-poster", daemon=True)
        self._thread.start()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> EventPoster | None:
        """A poster for the job the environment names; None outside a cluster pod."""
        url, token = env.get(EVENTS_URL_ENV), env.get(JOB_TOKEN_ENV)
        return cls(url, token) if url and token else None

    def put(self, event: dict[str, Any]) -> None:
        """Queue an event; never blocks (past `max_backlog` the oldest event goes)."""
        with self._wake:
            if self._gave_up:
                self.dropped += 1
                return
            self._seq += 1
            self._pending.append((self._seq, event))
            if len(self._pending) > self.max_backlog:
                self._pending.popleft()
                self.dropped += 1
                self._unreported += 1
            if len(self._pending) >= self.batch_size:
                self._wake.notify()

    def close(self) -> None:
        """Send what is queued (for at most `final_wait_s`), then stop."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(self.final_wait_s + 1.0)
        with self._wake:
            self.dropped += len(self._pending)
            self._pending.clear()
            self._gave_up = True
        if self.dropped:
            _say_stderr(f"{self.dropped} training events never reached the API ({self.url})")
        self._client.close()

    def _run(self) -> None:
        deadline: float | None = None
        delay = self.backoff_s[0]
        while True:
            with self._wake:
                if not self._closing and len(self._pending) < self.batch_size:
                    self._wake.wait(self.flush_s)
                if self._closing and deadline is None:
                    deadline = time.monotonic() + self.final_wait_s
                batch = self._batch()
            if batch is None:
                if self._closing:
                    return
                continue
            outcome = self._send(batch)
            if outcome == "sent":
                delay = self.backoff_s[0]
                continue
            if outcome == "stop" or (deadline is not None and time.monotonic() >= deadline):
                return
            with self._wake:  # wait before retrying; close() cuts the wait short
                self._wake.wait(delay if deadline is None else min(delay, 1.0))
            delay = min(delay * 2, self.backoff_s[1])

    def _batch(self) -> _Batch | None:
        """The next batch (left queued until sent), led by a note of the events dropped."""
        if not self._pending:
            return None
        taken = [self._pending[i] for i in range(min(self.batch_size, len(self._pending)))]
        events = [event for _, event in taken]
        noted = self._unreported
        if noted:
            note = f"{noted} training events were dropped: the API was unreachable"
            events.insert(0, {"event": "log", "message": note})
        return _Batch(events, taken[-1][0], noted)

    def _send(self, batch: _Batch) -> str:
        """'sent' (off the queue), 'retry', or 'stop' (nothing more is sent)."""
        body = json.dumps({"events": batch.events}, default=str)  # NaN as on stdout
        try:
            status = self._client.post(self.url, content=body).status_code
        except httpx.HTTPError as exc:
            self.failed_sends += 1
            _say_stderr(f"events not sent, will retry: {exc}")
            return "retry"
        if status >= 500 or status in _RETRY:
            self.failed_sends += 1
            _say_stderr(f"events not sent (HTTP {status}), will retry")
            return "retry"
        own = len(batch.events) - (1 if batch.noted else 0)  # the note is not a queued event
        with self._wake:
            while self._pending and self._pending[0][0] <= batch.last_seq:
                self._pending.popleft()
            self._unreported -= batch.noted
            if status in _GIVE_UP:
                self.dropped += own + len(self._pending)
                self._pending.clear()
                self._gave_up = True
                _say_stderr(f"the API refused the job's events (HTTP {status}); sending no more")
                return "stop"
            if status >= 300:
                self.dropped += own
                _say_stderr(f"the API refused {own} events (HTTP {status}); they are dropped")
        return "sent"


@dataclass(frozen=True)
class _Batch:
    events: list[dict[str, Any]]
    last_seq: int  # the newest queued event it holds
    noted: int  # the dropped events its leading log line counts (0: no such line)


def _say_stderr(message: str) -> None:
    print(f"tailor: {message}", file=sys.stderr, flush=True)
