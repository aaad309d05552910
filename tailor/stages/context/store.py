"""Where a team's code index lives, how it is built from a dataset, and the serving side's cache.

`teams/<team>/context/index-<dataset>-<digest>.npz` is an index (named by the newest dataset and
its content) and `current.json` names the one to serve; the pointer is written last, so a reader
never sees a half-written index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tailor.stages.context.index import CodeIndex, SourceFile, build_index
from tailor.stages.harvest.shards import SHARD_RE
from tailor.storage import ObjectStore, StoreError, team_prefix

log = logging.getLogger(__name__)

POINTER = "current.json"
_COLUMNS = ["repo", "path", "language", "content"]


def context_prefix(team: str) -> str:
    """`teams/<team>/context/`."""
    return f"{team_prefix(team)}context/"


def dataset_files(
    store: ObjectStore, prefixes: Sequence[str], repos: Collection[str]
) -> Iterator[SourceFile]:
    """The files of the datasets under `prefixes` (newest first) whose repository is one of
    `repos`; a path an earlier prefix gave is not given again (a later harvest holds only what
    changed, so the team's code is the union, newest copy first)."""
    keep, given = set(repos), set()
    with tempfile.TemporaryDirectory(prefix="tailor-context-") as tmp:
        for prefix in prefixes:
            for key in sorted(k for k in store.list(prefix) if SHARD_RE.search(k)):
                local = Path(tmp) / "shard.parquet"
                store.download_file(key, local)
                for row in pq.read_table(local, columns=_COLUMNS).to_pylist():
                    where = (row["repo"], row["path"])
                    if row["repo"] in keep and where not in given:
                        given.add(where)
                        yield SourceFile(row["repo"], row["path"], row["language"], row["content"])
                local.unlink()


@dataclass(frozen=True)
class Built:
    """What one build wrote: the index's key and its size."""

    key: str
    dataset: str
    files: int
    symbols: int
    chunks: int
    bytes: int
    build_s: float


def publish_index(
    store: ObjectStore, team: str, datasets: Sequence[tuple[str, str]], repos: Collection[str]
) -> Built:
    """Build the index of the datasets' files (of `repos` only) and make it the team's current
    one. `datasets` are (uid, prefix), newest first; the index is named after the newest.

    Older indexes of the team are deleted once the pointer names the new one.
    """
    started = time.perf_counter()
    builder = build_index(dataset_files(store, [p for _, p in datasets], repos))
    dataset = datasets[0][0] if datasets else "none"
    data = builder.to_bytes()
    base = context_prefix(team)
    # Named by content too: a rebuild without a removed repository is a new key for the cache.
    key = f"{base}index-{dataset}-{hashlib.sha256(data).hexdigest()[:12]}.npz"
    store.put_bytes(key, data)
    built = Built(
        key,
        dataset,
        len(builder.files),
        len(builder.symbols),
        len(builder.chunks),
        len(data),
        round(time.perf_counter() - started, 3),
    )
    store.put_bytes(base + POINTER, json.dumps(built.__dict__).encode())
    for old in store.list(base):
        if old.endswith(".npz") and old != key:
            store.delete_prefix(old)
    return built


@dataclass
class _Cached:
    key: str | None
    index: CodeIndex | None
    checked: float


class TeamIndexes:
    """The serving side's indexes, one per team, re-read when the team's pointer changes.

    The pointer is read at most every `refresh_s` per team, so a new dataset's index (or a
    removed repository's absence) is served within that time; the index itself is downloaded
    only when the pointer names another one. Keys are the team's: no other team's index is
    reachable from a team's name.
    """

    def __init__(
        self,
        store: ObjectStore,
        refresh_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.refresh_s, self.clock = store, refresh_s, clock
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def get(self, team: str) -> CodeIndex | None:
        """The team's current index, or None when it has none."""
        now = self.clock()
        with self._lock:
            cached = self._cache.get(team)
        if cached is not None and now - cached.checked < self.refresh_s:
            return cached.index
        pointer = self._pointer(team)
        key = pointer.get("key") if pointer else None
        if not (isinstance(key, str) and key.startswith(context_prefix(team))):
            key = None  # a pointer only ever names an index under its own team's prefix
        if cached is not None and cached.key == key:
            cached.checked = now
            return cached.index
        index = CodeIndex.load(self.store.get_bytes(key)) if key is not None else None
        with self._lock:
            self._cache[team] = _Cached(key, index, now)
        return index

    def preload(self, teams: Callable[[], Iterable[str]]) -> threading.Thread:
        """Load the indexes of the `teams()` in a background thread, so that no request waits
        for one (a 10,000-file team's index takes seconds to download and load)."""

        def load() -> None:
            try:
                names = list(teams())
            except Exception:  # the database is not there yet: requests load what they need
                log.warning("could not list the teams whose code index to preload", exc_info=True)
                return
            for team in names:
                try:
                    self.get(team)
                except Exception:  # a store outage: the first request retries
                    log.warning("could not preload the code index of %s", team, exc_info=True)

        thread = threading.Thread(target=load, name="context-preload", daemon=True)
        thread.start()
        return thread

    def _pointer(self, team: str) -> dict[str, Any] | None:
        try:
            found = json.loads(self.store.get_bytes(context_prefix(team) + POINTER))
        except StoreError:
            return None
        return found if isinstance(found, dict) else None
