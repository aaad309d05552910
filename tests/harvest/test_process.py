"""Per-file stages: the same results in worker processes as in this one, in the same order."""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
from pathlib import Path

import numpy as np

from tailor.demo.gitserver import FileContent, GitServer
from tailor.stages.harvest.process import Batch, process_files
from tailor.stages.harvest.spec import FilterConfig, HarvestSpec
from tailor.stages.harvest.walk import Candidate, Limits, walk_tree
from tests.harvest.conftest import LEDGER, RETRY


def candidates_of(bare: Path, commit: str) -> list[Candidate]:
    return walk_tree(bare, commit, repo="r", filters=FilterConfig(), limits=Limits(1 << 26)).files


def candidates(server: GitServer) -> list[Candidate]:
    files: dict[str, FileContent] = {
        f"m{i:02d}.py": LEDGER.format(noun=f"n{i}", cls=f"N{i}") for i in range(30)
    }
    files |= {"retry.py": RETRY, "bad.py": b"\xff\xfe not utf-8"}
    return candidates_of(server.bare_path("r"), server.create_repo("r", files))


def test_worker_processes_give_the_same_documents_in_order(git_server: GitServer) -> None:
    files = candidates(git_server)
    seen: list[int] = []

    def on_batch(chunk: list[Candidate], _batch: Batch) -> None:
        seen.append(len(chunk))

    here = process_files(files, HarvestSpec(), 1, on_batch)
    pooled = process_files(files, HarvestSpec(), 2, on_batch, pool_min_files=0)
    assert [d.path for b in pooled for d in b.docs] == [d.path for b in here for d in b.docs]
    assert np.array_equal(
        np.concatenate([b.signatures for b in pooled]), np.concatenate([b.signatures for b in here])
    )
    assert sum(b.dropped["invalid_utf8"] for b in pooled) == 1
    assert sum(seen) == 2 * len(files)


def in_a_daemon(bare: str, commit: str, out: multiprocessing.queues.Queue[int]) -> None:  # type: ignore[type-arg]
    files = candidates_of(Path(bare), commit)
    batches = process_files(files, HarvestSpec(), 2, lambda _c, _b: None, pool_min_files=0)
    out.put(sum(len(b.docs) for b in batches))


def test_a_daemonic_worker_process_harvests_without_a_pool(git_server: GitServer) -> None:
    # Celery's prefork children are daemonic and may not start processes of their own.
    files = candidates(git_server)
    expected = len(files) - 1  # all but bad.py
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    args = (str(git_server.bare_path("r")), files[0].commit, out)
    proc = ctx.Process(target=in_a_daemon, args=args, daemon=True)
    proc.start()
    assert out.get(timeout=120) == expected
    proc.join()
