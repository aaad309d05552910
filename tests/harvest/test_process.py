"""Per-file stages: the same results in worker processes as in this one, in the same order."""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
from pathlib import Path

import numpy as np

from tailor.harvest.process import Batch, process_files
from tailor.harvest.spec import FilterConfig, HarvestSpec
from tailor.harvest.walk import Candidate, walk_tree
from tests.harvest.conftest import LEDGER, RETRY


def candidates(root: Path) -> list[Candidate]:
    for i in range(30):
        (root / f"m{i:02d}.py").write_text(LEDGER.format(noun=f"n{i}", cls=f"N{i}"))
    (root / "retry.py").write_text(RETRY)
    (root / "bad.py").write_bytes(b"\xff\xfe not utf-8")
    return walk_tree(root, repo="r", filters=FilterConfig()).files


def test_worker_processes_give_the_same_documents_in_order(tmp_path: Path) -> None:
    files = candidates(tmp_path)
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


def in_a_daemon(root: str, out: multiprocessing.queues.Queue[int]) -> None:  # type: ignore[type-arg]
    files = walk_tree(Path(root), repo="r", filters=FilterConfig()).files
    batches = process_files(files, HarvestSpec(), 2, lambda _c, _b: None, pool_min_files=0)
    out.put(sum(len(b.docs) for b in batches))


def test_a_daemonic_worker_process_harvests_without_a_pool(tmp_path: Path) -> None:
    # Celery's prefork children are daemonic and may not start processes of their own.
    expected = len(candidates(tmp_path)) - 1  # all but bad.py
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=in_a_daemon, args=(str(tmp_path), out), daemon=True)
    proc.start()
    assert out.get(timeout=120) == expected
    proc.join()
