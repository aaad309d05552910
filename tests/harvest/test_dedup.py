"""Deduplication: exact after whitespace, near by MinHash+LSH, earlier datasets win."""

from __future__ import annotations

import numpy as np
import pytest

from tailor.stages.harvest.dedup import (
    EXACT,
    KEEP,
    NEAR,
    DedupIndex,
    exact_key,
    index_of,
    lsh_params,
    select_unique,
)
from tailor.stages.harvest.minhash import MinHasher
from tailor.stages.harvest.spec import DedupConfig
from tests.harvest.conftest import LEDGER, RETRY, near_duplicate_of_retry

CFG = DedupConfig()


def decide(docs: list[str], previous: DedupIndex | None = None) -> list[int]:
    data = [d.encode() for d in docs]
    sig, has = MinHasher(CFG.num_perm, CFG.ngram, CFG.seed).signatures(data)
    exact = np.array([exact_key(d) for d in data], dtype=np.uint64)
    return select_unique(previous or DedupIndex.empty(CFG), exact, sig, has, CFG).status.tolist()


def test_whitespace_does_not_change_the_exact_key() -> None:
    assert exact_key(b"a  =\t1\n\n") == exact_key(b"a = 1")
    assert exact_key(b"a = 1") != exact_key(b"a = 2")


def test_copies_and_near_copies_are_dropped_after_the_first() -> None:
    invoice = LEDGER.format(noun="invoice", cls="Invoice")
    refund = LEDGER.format(noun="refund", cls="Refund")
    docs = [invoice, RETRY, invoice.replace("    ", "\t"), near_duplicate_of_retry(), refund]
    assert decide(docs) == [KEEP, KEEP, EXACT, NEAR, KEEP]


def test_what_an_earlier_dataset_holds_wins_over_a_new_copy() -> None:
    data = [RETRY.encode()]
    sig, has = MinHasher(CFG.num_perm, CFG.ngram, CFG.seed).signatures(data)
    earlier = index_of(np.array([exact_key(data[0])], dtype=np.uint64), sig, has, CFG)
    restored = DedupIndex.from_bytes(earlier.to_bytes())
    assert decide([near_duplicate_of_retry(), RETRY], restored) == [NEAR, EXACT]


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.7, 256), (0.5, 128), (0.85, 64)])
def test_lsh_bands_follow_datasketch(threshold: float, num_perm: int) -> None:
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    assert lsh_params(threshold, num_perm) == (lsh.b, lsh.r)


def test_an_index_with_other_parameters_is_not_compatible() -> None:
    assert not DedupIndex.empty(DedupConfig(num_perm=128)).compatible(CFG)
