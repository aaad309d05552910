"""The harvest: a team's repositories in, parquet shards and a manifest in the object store out.

    fetch + walk (threads) -> read, filter, redact, hash (processes) -> exact + near dedup
    (against the team's earlier datasets too) -> split -> shards, dedup index, manifest

Re-running the same harvest (a worker killed and the task redelivered) writes the same
objects under the same names; the manifest is written last, so a dataset with a manifest is
complete. A cancelled harvest removes everything it wrote.

A dataset holds what is new: files already in one of the team's earlier datasets (the same
content, or a near copy of it) are dropped as duplicates, and an incremental re-harvest only
reads the files changed since the commit an earlier dataset holds; the manifest lists the
files deleted since (`deleted`). When no repository changed at all, the dataset is empty and
its manifest says since which datasets nothing changed (`unchanged_since`), so a fine-tune
can name them. Kept documents stay in memory until the shards are written (the repository
size cap bounds them).

A cancel stops git where it is: while repositories are fetched, the harvest asks every
`cancel_poll_s` seconds whether it was cancelled, and kills the git runs still going if so.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from tailor.stages.harvest.dedup import EXACT, NEAR, DedupIndex, index_of, select_unique
from tailor.stages.harvest.fetch import repo_dir, repo_lock
from tailor.stages.harvest.gather import FetchLimits, RepoFiles, fetch_all
from tailor.stages.harvest.gitrun import GitStopped
from tailor.stages.harvest.previous import (
    INDEX_NAME,
    MANIFEST_NAME,
    Previous,
    incremental_or_full,
    load_previous,
)
from tailor.stages.harvest.process import Batch, Document, process_files, start_workers_early
from tailor.stages.harvest.shards import (
    SCHEMA,
    Row,
    dataset_prefix,
    remove_stale_shards,
    split_of,
    write_shards,
)
from tailor.stages.harvest.spec import HarvestSpec, RepoSource
from tailor.stages.harvest.stats import Tally
from tailor.stages.harvest.urls import UrlPolicy
from tailor.stages.harvest.walk import Candidate
from tailor.storage import ObjectStore

Progress = Callable[[float, str], None]
T = TypeVar("T")
# Share of the progress bar each stage fills, in order.
_STAGES = {"fetch": (0.0, 0.3), "process": (0.3, 0.85), "dedup": (0.85, 0.9), "write": (0.9, 1.0)}


class HarvestError(Exception):
    """The harvest produced no dataset; the message says why and what to do."""


class HarvestCancelled(Exception):
    """Someone cancelled the harvest; nothing it wrote is left in the store."""


@dataclass
class HarvestResult:
    """Where the dataset is and its manifest (with `stats` and `repositories`)."""

    dataset_id: str
    prefix: str
    manifest: dict[str, Any]


@dataclass
class Reporter:
    """Progress within the current stage, throttled (each report is a DB transaction)."""

    progress: Progress
    cancelled: Callable[[], bool]
    cancel_poll_s: float = 1.0
    stage: str = "fetch"
    _last: float = 0.0

    def report(self, done: float, message: str, *, force: bool = False) -> None:
        lo, hi = _STAGES[self.stage]
        now = time.monotonic()
        if force or now - self._last >= 1.0:
            self._last = now
            self.progress(lo + (hi - lo) * min(max(done, 0.0), 1.0), message)

    def check(self) -> None:
        if self.cancelled():
            raise HarvestCancelled("the harvest was cancelled")

    def enter(self, stage: str, message: str) -> None:
        self.check()
        self.stage = stage
        self.report(0.0, message, force=True)


def run_harvest(
    spec: HarvestSpec,
    sources: list[RepoSource],
    store: ObjectStore,
    *,
    team: str,
    dataset_id: str,
    cache_dir: Path,
    previous_datasets: list[str] | None = None,
    parallelism: int = 2,
    timeout_s: float = 600,
    max_repo_bytes: int = 2 << 30,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    policy: UrlPolicy | None = None,
    cancel_poll_s: float = 1.0,
) -> HarvestResult:
    """Harvest `sources` into dataset `dataset_id` of `team`; see the module docstring.

    `policy` says which repository URLs and addresses git may reach. Raises HarvestError when
    no repository could be fetched (each one's reason in the message) and HarvestCancelled
    when `cancelled()` turns true (after cleaning up).
    """
    reporter = Reporter(
        progress or (lambda _f, _m: None), cancelled or (lambda: False), cancel_poll_s
    )
    limits = FetchLimits(timeout_s, max_repo_bytes, policy or UrlPolicy())
    prefix = dataset_prefix(team, dataset_id)
    try:
        with ExitStack() as locks:
            # Two harvests of one repository take turns on its cache directory, from fetch
            # until its files have been read (a consistent order: no deadlock).
            by_dir = {repo_dir(cache_dir, s): s for s in sources}
            for directory in sorted(by_dir):
                locks.enter_context(repo_lock(cache_dir, by_dir[directory]))
            return _harvest(
                spec,
                sorted(sources, key=lambda s: s.name),
                store,
                team=team,
                dataset_id=dataset_id,
                cache_dir=cache_dir,
                previous_ids=list(previous_datasets or []),
                parallelism=parallelism,
                limits=limits,
                reporter=reporter,
            )
    except GitStopped as exc:
        store.delete_prefix(prefix)
        raise HarvestCancelled("the harvest was cancelled") from exc
    except HarvestCancelled:
        store.delete_prefix(prefix)
        raise


def _harvest(
    spec: HarvestSpec,
    sources: list[RepoSource],
    store: ObjectStore,
    *,
    team: str,
    dataset_id: str,
    cache_dir: Path,
    previous_ids: list[str],
    parallelism: int,
    limits: FetchLimits,
    reporter: Reporter,
) -> HarvestResult:
    tally = Tally()
    t0 = time.perf_counter()
    previous = load_previous(store, team, previous_ids, spec.dedup)
    tally.seconds["previous"] += time.perf_counter() - t0
    sources = [incremental_or_full(s, previous) for s in sources]
    start_workers_early(parallelism)
    repos = _fetch(sources, cache_dir, spec, limits, parallelism, reporter, tally)
    tally.unchanged_since = nothing_changed_since(repos, previous)
    files = [c for r in repos if r.walk is not None for c in r.walk.files]
    batches = _process(files, spec, parallelism, reporter, tally)
    docs, kept_index = _dedup(batches, previous, spec, reporter, tally)
    rows = [row_of(d, spec) for d in docs]
    reporter.enter("write", f"writing {len(rows)} files to the dataset")
    manifest = guarded_write(
        store,
        dataset_prefix(team, dataset_id),
        lambda: write_dataset(
            store, team, dataset_id, rows, kept_index, repos, previous, spec, tally, reporter
        ),
    )
    done = f"harvested {len(rows)} files"
    if tally.unchanged_since:
        done = f"no changes since dataset {', '.join(tally.unchanged_since)}: nothing new"
    reporter.report(1.0, done, force=True)
    return HarvestResult(dataset_id, dataset_prefix(team, dataset_id), manifest)


def nothing_changed_since(repos: list[RepoFiles], previous: Previous) -> list[str]:
    """The earlier datasets holding every repository as it is now, when nothing changed.

    Empty when any repository changed (or was harvested in full); failed ones do not count.
    """
    ok = [r.outcome for r in repos if r.outcome.status == "ok"]
    if not ok or any(o.since is None or o.changed_files or o.deleted_files for o in ok):
        return []
    holders = {previous.commits.get((o.name, o.since or "")) for o in ok}
    return sorted(h for h in holders if h is not None)


def _fetch(
    sources: list[RepoSource],
    cache_dir: Path,
    spec: HarvestSpec,
    limits: FetchLimits,
    parallelism: int,
    reporter: Reporter,
    tally: Tally,
) -> list[RepoFiles]:
    reporter.enter("fetch", f"fetching {len(sources)} repositories")

    def done(n: int, repo: RepoFiles) -> None:
        tally.add_walk(repo)
        reporter.report(
            n / max(len(sources), 1), f"fetched {repo.outcome.name} ({n}/{len(sources)})"
        )
        reporter.check()

    repos = fetch_all(
        sources,
        cache_dir,
        spec.filters,
        limits,
        parallelism=parallelism,
        on_done=done,
        cancelled=reporter.cancelled,
        poll_s=reporter.cancel_poll_s,
    )
    if repos and all(r.outcome.status == "failed" for r in repos):
        reasons = "; ".join(f"{r.outcome.name}: {r.outcome.reason}" for r in repos)
        raise HarvestError(f"no repository could be harvested: {reasons}")
    return repos


def _process(
    files: list[Candidate], spec: HarvestSpec, parallelism: int, reporter: Reporter, tally: Tally
) -> list[Batch]:
    reporter.enter("process", f"filtering and redacting {len(files)} files")

    def done(chunk: list[Candidate], batch: Batch) -> None:
        tally.add_batch(batch, len(chunk))
        reporter.report(
            tally.files_processed / max(len(files), 1),
            f"processed {tally.files_processed}/{len(files)} files",
        )
        reporter.check()

    return process_files(files, spec, parallelism, done)


def _dedup(
    batches: list[Batch], previous: Previous, spec: HarvestSpec, reporter: Reporter, tally: Tally
) -> tuple[list[Document], DedupIndex]:
    reporter.enter("dedup", "removing duplicates")
    t0 = time.perf_counter()
    docs = [d for b in batches for d in b.docs]
    exact = np.concatenate([b.exact for b in batches]) if batches else np.zeros(0, np.uint64)
    sigs = stack_signatures([b.signatures for b in batches], spec.dedup.num_perm)
    has = np.concatenate([b.has_signature for b in batches]) if batches else np.zeros(0, bool)
    sizes = np.array([d.size for d in docs], dtype=np.int64)
    keep = deduplicate(previous, exact, sigs, has, sizes, spec, tally)
    kept = [d for d, k in zip(docs, keep, strict=True) if k]
    for d in kept:
        tally.secrets.update(d.secrets)
    tally.seconds["dedup"] += time.perf_counter() - t0
    return kept, index_of(exact[keep], sigs[keep], has[keep], spec.dedup)


def deduplicate(
    previous: Previous,
    exact: np.ndarray,
    sigs: np.ndarray,
    has: np.ndarray,
    sizes: np.ndarray,
    spec: HarvestSpec,
    tally: Tally,
) -> np.ndarray:
    """Which documents (in harvest order) to keep; what was dropped goes to the tally."""
    decision = select_unique(previous.index, exact, sigs, has, spec.dedup)
    status = decision.status
    tally.add_duplicates(
        decision.count(EXACT),
        decision.count(NEAR),
        decision.of_previous,
        int(sizes[status == EXACT].sum()),
        int(sizes[status == NEAR].sum()),
    )
    return decision.keep


def stack_signatures(parts: list[np.ndarray], num_perm: int) -> np.ndarray:
    parts = [p for p in parts if len(p)]
    return np.concatenate(parts) if parts else np.zeros((0, num_perm), np.uint32)


def row_of(doc: Document, spec: HarvestSpec) -> Row:
    split = split_of(doc.repo, doc.path, spec.holdout_fraction)
    return Row(doc.repo, doc.path, doc.language, doc.content, doc.size, doc.commit, split)


def _outcomes(repos: list[RepoFiles], kept: Counter[str]) -> list[dict[str, Any]]:
    out = []
    for r in repos:
        outcome = r.outcome.model_copy(update={"files_kept": kept.get(r.outcome.name, 0)})
        out.append(outcome.model_dump(mode="json"))
    return out


@dataclass
class _Kept:
    """What the manifest says about the rows, noted as they stream into the shards."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    per_repo: Counter[str] = field(default_factory=Counter)

    def note(self, rows: Iterable[Row]) -> Iterator[Row]:
        for r in rows:
            self.rows.append(
                {"language": r.language, "size": r.size, "chars": len(r.content), "split": r.split}
            )
            self.per_repo[r.repo] += 1
            yield r


def write_dataset(
    store: ObjectStore,
    team: str,
    dataset_id: str,
    rows: Iterable[Row],
    index: DedupIndex,
    repos: list[RepoFiles],
    previous: Previous,
    spec: HarvestSpec,
    tally: Tally,
    reporter: Reporter,
) -> dict[str, Any]:
    """Shards (rows streamed in order), the dedup index, then the manifest; returns it."""
    t0 = time.perf_counter()
    prefix = dataset_prefix(team, dataset_id)
    kept = _Kept()
    shards = write_shards(kept.note(rows), store, prefix)
    reporter.check()
    store.put_bytes(prefix + INDEX_NAME, index.to_bytes())
    tally.seconds["write"] += time.perf_counter() - t0
    manifest = {
        "team": team,
        "dataset_id": dataset_id,
        "created_at": datetime.now(UTC).isoformat(),
        "schema": SCHEMA.names,
        "shards": shards,
        "dedup_index": prefix + INDEX_NAME,
        "previous_datasets": previous.datasets,
        "spec": spec.model_dump(mode="json"),
        "stats": tally.to_dict(kept.rows, repos),
        "repositories": _outcomes(repos, kept.per_repo),
        "deleted": {
            r.outcome.name: r.walk.deleted for r in repos if r.walk is not None and r.walk.deleted
        },
        "unchanged_since": tally.unchanged_since,
    }
    reporter.check()
    store.put_bytes(prefix + MANIFEST_NAME, json.dumps(manifest, indent=2).encode())
    remove_stale_shards(store, prefix, {str(s["key"]) for s in shards})
    return manifest


def guarded_write(store: ObjectStore, prefix: str, write: Callable[[], T]) -> T:
    """`write()`; when the store fails it, what it wrote goes and HarvestError says why."""
    try:
        return write()
    except HarvestCancelled:
        raise
    except Exception as exc:  # S3 down, bucket missing, disk full: the dataset is incomplete
        store_cleanup(store, prefix)
        raise HarvestError(
            f"could not write the dataset to the object store {store.url}: {exc}; "
            "check that the store is reachable and writable, then start the harvest again"
        ) from exc


def store_cleanup(store: ObjectStore, prefix: str) -> None:
    """Remove what a failed write left, if the store lets us (it may be the thing that failed)."""
    with suppress(Exception):
        store.delete_prefix(prefix)
