"""The gateway's recorder: served completions and editor events queued in memory on the request
path and written in batches by a thread, so that recording costs a completion an append.

An event is checked against its completion's team at once (404 for anyone else's), whether
that completion is still queued or already written.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType

from sqlalchemy import Connection, bindparam, insert, select

from tailor.db.models import CompletionEvent, ServedCompletion
from tailor.redaction.redact import redact
from tailor.telemetry.records import Feedback, Served

log = logging.getLogger(__name__)

Transaction = Callable[[], AbstractContextManager[Connection]]

_OWNER = select(ServedCompletion.team_id).where(ServedCompletion.id == bindparam("cid"))
# A queue that outgrows this (the database is down) drops its oldest: telemetry never takes
# the gateway's memory.
MAX_QUEUED = 100_000


class Recorder:
    """Queues what the gateway served and writes it every `interval_s` (and when it stops)."""

    def __init__(self, read: Transaction, write: Transaction, *, interval_s: float = 1.0) -> None:
        self.read, self.write, self.interval_s = read, write, interval_s
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._served: list[Served] = []
        self._events: list[Feedback] = []
        self._unwritten: dict[str, int] = {}  # completion id -> team id, until written
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def served(self, record: Served) -> None:
        """Queue a served completion (called on the event loop: an append, no I/O)."""
        with self._lock:
            if len(self._served) >= MAX_QUEUED:
                dropped = self._served.pop(0)
                self._unwritten.pop(dropped.id, None)
            self._served.append(record)
            self._unwritten[record.id] = record.team_id

    def feedback(self, team_id: int, event: Feedback) -> bool:
        """Queue an event of one of `team_id`'s completions; False (nothing queued) when the id is
        no completion of that team's. Reads the database: call it off the event loop."""
        with self._lock:
            owner = self._unwritten.get(event.completion_id)
        if owner is None:
            with self.read() as conn:
                owner = conn.scalar(_OWNER, {"cid": event.completion_id})
        if owner != team_id:
            return False
        with self._lock:
            if len(self._events) < MAX_QUEUED:
                self._events.append(event)
        return True

    def flush(self) -> int:
        """Write everything queued, in one transaction; the number of rows written."""
        with self._flushing:
            with self._lock:
                served, events = self._served, self._events
                self._served, self._events = [], []
            if not served and not events:
                return 0
            try:
                with self.write() as conn:
                    if served:
                        rows = [_served_row(s) for s in served]
                        conn.execute(insert(ServedCompletion), rows)
                    if events:
                        conn.execute(insert(CompletionEvent), [_row(e) for e in events])
            except Exception:
                with self._lock:  # kept for the next try, ahead of what came since
                    self._served[:0], self._events[:0] = served, events
                raise
            with self._lock:
                for record in served:
                    self._unwritten.pop(record.id, None)
            return len(served) + len(events)

    def __enter__(self) -> Recorder:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="tailor-telemetry", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._flush_logged()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._flush_logged()

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except Exception:  # the database is away: keep the queue, try again next time
            log.exception("could not write completion telemetry; will retry")


def _row(record: Feedback) -> dict[str, object]:
    return dataclasses.asdict(record)


def _served_row(record: Served) -> dict[str, object]:
    """The row of a served completion, its text (if kept) redacted as harvest redacts."""
    row = dataclasses.asdict(record)
    language = record.language or ""
    for key in ("prompt_text", "completion_text"):
        if row[key] is not None:
            row[key] = redact(row[key], language=language).text
    return row
