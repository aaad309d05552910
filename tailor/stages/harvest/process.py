"""Per-file work on a batch, run in worker processes: read, filter, redact, hash, sign.

Everything that depends on one file only happens here, in parallel; what needs all files at
once (deduplication, shards) happens afterwards in the parent.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Generator
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from itertools import groupby, repeat
from multiprocessing.context import BaseContext
from pathlib import Path

import numpy as np

from tailor.redaction.redact import redact
from tailor.stages.harvest.blobs import read_blobs
from tailor.stages.harvest.dedup import exact_key
from tailor.stages.harvest.filters import quality_issue
from tailor.stages.harvest.minhash import hasher_for
from tailor.stages.harvest.notebooks import NotebookError, code_cells
from tailor.stages.harvest.spec import HarvestSpec
from tailor.stages.harvest.walk import Candidate

NOTEBOOK = "Jupyter Notebook"


@dataclass
class Document:
    """A file that passed the per-file stages, with redacted content."""

    repo: str
    path: str
    language: str
    commit: str
    content: str
    size: int  # bytes of content, UTF-8
    secrets: Counter[str]


@dataclass
class Batch:
    """What one batch of files became, plus per-stage accounting."""

    docs: list[Document] = field(default_factory=list)
    exact: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    signatures: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint32))
    has_signature: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    dropped: Counter[str] = field(default_factory=Counter)
    dropped_bytes: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    bytes_read: int = 0

    def drop(self, reason: str, size: int) -> None:
        self.dropped[reason] += 1
        self.dropped_bytes[reason] += size


def read_contents(files: list[Candidate]) -> Generator[bytes | None, None, None]:
    """The content of each file, in order, straight from its repository's git objects."""
    for gitdir, group in groupby(files, key=lambda c: c.gitdir):
        yield from read_blobs(Path(gitdir), [c.blob for c in group])


def decode(cand: Candidate, data: bytes | None) -> tuple[str | None, str | None]:
    """(text, None) or (None, reason): binary, invalid UTF-8, malformed notebook, unreadable."""
    if data is None:
        return None, "unreadable"
    if b"\0" in data:
        return None, "binary"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "invalid_utf8"
    text = text.removeprefix("\ufeff")
    if cand.language == NOTEBOOK:
        try:
            text = code_cells(text)
        except NotebookError:
            return None, "malformed_notebook"
    return text, None


def _keep(cand: Candidate, data: bytes | None, spec: HarvestSpec, batch: Batch) -> Document | None:
    t0 = time.perf_counter()
    text, reason = decode(cand, data)
    t1 = time.perf_counter()
    batch.seconds["read"] += t1 - t0
    if text is None:
        batch.drop(reason or "unreadable", cand.size)
        return None
    data = text.encode("utf-8", "surrogatepass")
    batch.bytes_read += len(data)
    issue = quality_issue(data, cand.path, spec.filters)
    t2 = time.perf_counter()
    batch.seconds["filter"] += t2 - t1
    if issue is not None:
        batch.drop(issue, cand.size)
        return None
    red = redact(text, path=cand.path, language=cand.language)
    batch.seconds["redact"] += time.perf_counter() - t2
    if red.secret_chars > spec.filters.max_secret_fraction * len(text):
        batch.drop("mostly_secrets", cand.size)
        return None
    size = len(red.text.encode("utf-8", "surrogatepass"))
    return Document(cand.repo, cand.path, cand.language, cand.commit, red.text, size, red.counts)


def process_batch(files: list[Candidate], spec: HarvestSpec) -> Batch:
    """Run the per-file stages on `files`; keeps their order."""
    batch = Batch()
    with closing(read_contents(files)) as reader:
        for cand in files:
            t0 = time.perf_counter()
            data = next(reader)
            batch.seconds["read"] += time.perf_counter() - t0
            doc = _keep(cand, data, spec, batch)
            if doc is not None:
                batch.docs.append(doc)
    t0 = time.perf_counter()
    contents = [d.content.encode("utf-8", "surrogatepass") for d in batch.docs]
    batch.exact = np.array([exact_key(c) for c in contents], dtype=np.uint64)
    hasher = hasher_for(spec.dedup.num_perm, spec.dedup.ngram, spec.dedup.seed)
    batch.signatures, batch.has_signature = hasher.signatures(contents)
    batch.seconds["minhash"] += time.perf_counter() - t0
    return batch


# Starting worker processes costs about a second each (imports): below this many files the
# harvest runs in its own process.
POOL_MIN_FILES = 400
BATCH_FILES = 64


def _batches(files: list[Candidate]) -> list[list[Candidate]]:
    return [files[i : i + BATCH_FILES] for i in range(0, len(files), BATCH_FILES)]


def _pool_context() -> BaseContext:
    """forkserver where there is one, else spawn; never a plain fork.

    Not fork: the caller runs threads (fetches, a Celery worker's own), and a forked child
    would inherit their locks in whatever state they were. A forkserver is a single-threaded
    process that imports the harvest code (and the main module, as spawn's children would)
    and builds the detectors once; workers fork from it in milliseconds, where spawn's each
    spend about a CPU-second importing the same modules and building the same detectors.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # Takes effect when the server starts (the first pool of this process).
    ctx.set_forkserver_preload(["__main__", __name__, "tailor.stages.harvest.warm"])
    return ctx


def start_workers_early(parallelism: int) -> None:
    """Start the pool's forkserver now, so that its imports overlap the fetch.

    A no-op where the harvest will run in-process or the server already runs; one idle
    server per process at most, reused by every later harvest.
    """
    if parallelism <= 1 or multiprocessing.current_process().daemon:
        return
    if _pool_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def process_files(
    files: list[Candidate],
    spec: HarvestSpec,
    parallelism: int,
    on_batch: Callable[[list[Candidate], Batch], None],
    *,
    pool_min_files: int = POOL_MIN_FILES,
) -> list[Batch]:
    """`process_batch` over all files, in order, in up to `parallelism` processes.

    `on_batch` runs in this process after each batch; an exception from it (a cancellation)
    stops the pool and drops the batches not yet done.
    """
    batches = _batches(files)
    # A daemonic process (a Celery prefork child) may not start children: there the
    # worker's own concurrency is the parallelism, and this job runs in-process.
    in_process = multiprocessing.current_process().daemon
    if in_process or parallelism <= 1 or len(files) < pool_min_files:
        results = []
        for chunk in batches:
            results.append(process_batch(chunk, spec))
            on_batch(chunk, results[-1])
        return results
    pool = ProcessPoolExecutor(max_workers=parallelism, mp_context=_pool_context())
    try:
        results = []
        for chunk, batch in zip(
            batches, pool.map(process_batch, batches, repeat(spec)), strict=True
        ):
            results.append(batch)
            on_batch(chunk, batch)
        return results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
