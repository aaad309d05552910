"""Fetch and walk every repository, several at once; a failure stays that repository's own.

Git does the work in subprocesses, so threads suffice to run `parallelism` fetches at once.
Each repository ends as an outcome: ok with its commit and candidate files, or failed with a
reason a person can act on and no credential in it. A cancel is no repository's failure:
it stops every git run at once and ends the fetch with GitStopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from tailor.stages.harvest.fetch import fetch_repo
from tailor.stages.harvest.gitrun import FetchError, GitStopped, scrub
from tailor.stages.harvest.spec import FilterConfig, RepoOutcome, RepoSource
from tailor.stages.harvest.urls import UrlPolicy
from tailor.stages.harvest.walk import Limits, WalkResult, walk_tree

log = logging.getLogger("tailor.harvest")


@dataclass(frozen=True)
class FetchLimits:
    """How long one git run may take, how large a repository may be, which URLs are allowed,
    and what stops every git run (asked every few tenths of a second: keep it cheap)."""

    timeout_s: float
    max_bytes: int
    policy: UrlPolicy = field(default_factory=UrlPolicy)
    stop: Callable[[], bool] | None = None


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
        fetched = fetch_repo(
            source,
            cache_root,
            timeout_s=limits.timeout_s,
            max_bytes=limits.max_bytes,
            policy=limits.policy,
            stop=limits.stop,
        )
        walk = walk_tree(
            fetched.gitdir,
            fetched.commit,
            repo=source.name,
            filters=filters,
            limits=Limits(limits.max_bytes, timeout_s=limits.timeout_s),
            include=source.include,
            exclude=source.exclude,
            since=fetched.since,
        )
    except GitStopped:
        raise
    except FetchError as exc:
        return failed(source, exc.reason)
    except Exception as exc:  # one repository's surprise must not sink the others
        log.exception("harvest of repository %s failed", source.name)
        return failed(source, f"unexpected error while fetching: {type(exc).__name__}: {exc}")
    outcome = RepoOutcome(
        name=source.name,
        status="ok",
        commit=fetched.commit,
        incremental=fetched.since is not None,
        since=fetched.since,
        changed_files=walk.changed,
        deleted_files=len(walk.deleted) if fetched.since is not None else None,
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
    cancelled: Callable[[], bool] | None = None,
    poll_s: float = 1.0,
) -> list[RepoFiles]:
    """Every source fetched and walked, in the order given; `on_done` after each one.

    While fetches run, `cancelled()` is asked every `poll_s` seconds, here, in the caller's
    thread (it may read a database); when it says yes, every git run still going is killed
    and GitStopped ends the fetch. An exception from `on_done` (a cancellation) stops the
    git runs and the repositories not yet started the same way.
    """
    results: list[RepoFiles | None] = [None] * len(sources)
    stop = threading.Event()
    limits = replace(limits, stop=stop.is_set)
    pool = ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="harvest")
    try:
        futures: dict[Future[RepoFiles], int] = {
            pool.submit(fetch_and_walk, s, cache_root, filters, limits): i
            for i, s in enumerate(sources)
        }
        pending, finished = set(futures), 0
        while pending:
            done, pending = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
            for future in done:
                finished += 1
                results[futures[future]] = future.result()
                on_done(finished, future.result())
            if cancelled is not None and not stop.is_set() and cancelled():
                stop.set()
    except BaseException:
        stop.set()  # whatever ends the fetch ends the git runs still going
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [r for r in results if r is not None]
