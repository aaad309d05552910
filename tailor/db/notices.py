"""A cache that PostgreSQL empties: rows kept until a NOTIFY on their channel says they changed."""

from __future__ import annotations

import logging
import threading
import time
from typing import Generic, TypeVar

from sqlalchemy import Engine

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class NotifiedCache(Generic[K, V]):
    """Values read from the database, kept until the next notice on `channel`.

    A thread LISTENs on a connection of its own. Every notice, and every time that connection
    is made or lost, empties the cache; while it is down nothing is kept, so readers fall back
    to asking the database each time. A value read before a notice but stored after it would be
    stale: `put` takes the generation seen before the read and drops the value if it moved.
    A connection that dies silently (no reset from the network) is noticed late, so values
    are also dropped `max_age_s` after they were read: the worst case, bounded.
    """

    def __init__(
        self,
        engine: Engine,
        channel: str,
        *,
        max_age_s: float = 30.0,
        max_entries: int = 10_000,
        retry_s: float = 1.0,
    ) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.channel, self.max_age_s, self.max_entries = channel, max_age_s, max_entries
        self.retry_s = retry_s
        self._entries: dict[K, tuple[float, V]] = {}
        self._generation = 0
        self._live = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def live(self) -> bool:
        """Whether notices are being received (otherwise nothing is cached)."""
        return self._live

    @property
    def generation(self) -> int:
        """Moves whenever the cache is emptied; take it before reading what you will `put`."""
        return self._generation

    def get(self, key: K) -> V | None:
        """The value kept for `key`, if any."""
        entry = self._entries.get(key) if self._live else None
        if entry is None or time.monotonic() - entry[0] >= self.max_age_s:
            return None
        return entry[1]

    def put(self, key: K, value: V, generation: int) -> None:
        """Keep `value`, read after `generation` was taken, unless a notice came since."""
        read_at = time.monotonic()
        with self._lock:
            if not self._live or generation != self._generation:
                return
            if key not in self._entries and len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]  # the oldest
            self._entries[key] = (read_at, value)

    def start(self) -> None:
        """Start listening (in a daemon thread)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"listen-{self.channel}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop listening; the cache keeps nothing from now on."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._empty(live=False)

    def __enter__(self) -> NotifiedCache[K, V]:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _empty(self, *, live: bool) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._live = live

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as exc:  # the database went away: retry, uncached meanwhile
                log.warning("listening on %s failed, retrying: %s", self.channel, exc)
            finally:
                self._empty(live=False)
            self._stop.wait(self.retry_s)

    def _listen(self) -> None:
        with self._engine.connect() as conn:
            try:
                conn.exec_driver_sql(f'LISTEN "{self.channel}"')
                driver = conn.connection.driver_connection
                assert driver is not None
                self._empty(live=True)  # what changed before we listened is unknown
                while not self._stop.is_set():
                    for _notice in driver.notifies(timeout=0.5):
                        self._empty(live=True)
            finally:
                conn.invalidate()  # closed, not pooled: it is still listening, or broken
