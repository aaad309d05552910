"""Fetch and walk every repository, several at once; a failure stays that repository's own.

Git does the work in subprocesses, so threads suffice to run `parallelism` fetches at once.
Each repository ends as an outcome: ok with its commit and candidate files, or failed with a
reason a person can act on and no credential in it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tailor.harvest.fetch import fetch_repo
from tailor.harvest.gitrun import FetchError, scrub
from tailor.harvest.spec import FilterConfig, RepoOutcome, RepoSource
from tailor.harvest.walk import WalkResult, walk_tree

log = logging.getLogger("tailor.harvest")


@dataclass(frozen=True)
class FetchLimits:
    """How long one git run may take, how large a repository may be, and which schemes."""

    timeout_s: float
    max_bytes: int
    allow_http: bool = False


@dataclass
class RepoFiles:
    """One repository's outcome and, when it was fetched, its candidate files."""

    outcome: RepoOutcome
    walk: WalkResult | None
    seconds: float = 0.0


def failed(source: RepoSource, reason: str) -> RepoFiles:
    """A failed outcome whose reason holds no trace of the credential."""
    return RepoFiles(
        RepoOutcome(name=source.name, status="failed", reason=scrub(reason, source)), None
    )


def fetch_and_walk(
    source: RepoSource, cache_root: Path, filters: FilterConfig, limits: FetchLimits
) -> RepoFiles:
    """Fetch `source` and list its candidate files (only the changed ones when incremental)."""
    t0 = time.perf_counter()
    try:
        co = fetch_repo(
            source,
            cache_root,
            timeout_s=limits.timeout_s,
            max_bytes=limits.max_bytes,
            allow_http=limits.allow_http,
        )
        walk = walk_tree(
            co.path,
            repo=source.name,
            filters=filters,
            include=source.include,
            exclude=source.exclude,
            commit=co.commit,
            only=co.changed,
        )
    except FetchError as exc:
        return failed(source, exc.reason)
    except Exception as exc:  # one repository's surprise must not sink the others
        log.exception("harvest of repository %s failed", source.name)
        return failed(source, f"unexpected error while fetching: {type(exc).__name__}: {exc}")
    outcome = RepoOutcome(
        name=source.name,
        status="ok",
        commit=co.commit,
        incremental=co.incremental,
        changed_files=len(co.changed) if co.changed is not None else None,
    )
    return RepoFiles(outcome, walk, time.perf_counter() - t0)


def fetch_all(
    sources: list[RepoSource],
    cache_root: Path,
    filters: FilterConfig,
    limits: FetchLimits,
    *,
    parallelism: int,
    on_done: Callable[[int, RepoFiles], None],
) -> list[RepoFiles]:
    """Every source fetched and walked, in the order given; `on_done` after each one.

    An exception from `on_done` (a cancellation) stops the repositories not yet started.
    """
    results: list[RepoFiles | None] = [None] * len(sources)
    pool = ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="harvest")
    try:
        futures: dict[Future[RepoFiles], int] = {
            pool.submit(fetch_and_walk, s, cache_root, filters, limits): i
            for i, s in enumerate(sources)
        }
        for done, future in enumerate(as_completed(futures), start=1):
            results[futures[future]] = future.result()
            on_done(done, future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [r for r in results if r is not None]
