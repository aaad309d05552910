"""MinHash signatures: formatting-blind, and their agreement estimates Jaccard similarity."""

from __future__ import annotations

import random

import numpy as np

from tailor.stages.harvest.minhash import MinHasher, estimate_jaccard


def words(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"w{rng.randrange(10**9)}" for _ in range(n)]


def test_formatting_does_not_change_a_signature() -> None:
    hasher = MinHasher(num_perm=64, ngram=3)
    a = b"def f(a, b):\n    return a + b\n"
    b = b"def f( a,b ):\n\treturn a+b"
    sig, has = hasher.signatures([a, b])
    assert has.all() and (sig[0] == sig[1]).all()


def test_documents_too_short_for_a_shingle_have_no_signature() -> None:
    sig, has = MinHasher(num_perm=32, ngram=5).signatures([b"a b", b"a b c d e f"])
    assert has.tolist() == [False, True]
    assert sig.shape == (2, 32)


def test_agreement_estimates_jaccard_within_the_minhash_error() -> None:
    # Shingles of single tokens: a document is a set of words, so Jaccard is known exactly.
    hasher = MinHasher(num_perm=256, ngram=1, seed=3)
    base = words(2000, 1)
    for keep in (0.5, 0.8, 0.95):
        n = int(len(base) * keep)
        other = base[:n] + words(len(base) - n, 2)
        truth = n / (2 * len(base) - n)
        sig, _ = hasher.signatures([" ".join(base).encode(), " ".join(other).encode()])
        error = np.sqrt(truth * (1 - truth) / 256)
        assert abs(float(estimate_jaccard(sig[0], sig[1])) - truth) < 4 * error + 1e-9


def test_a_batch_gives_the_same_signatures_as_one_by_one() -> None:
    hasher = MinHasher(num_perm=64, ngram=2)
    docs = [" ".join(words(50, s)).encode() for s in range(4)]
    together, _ = hasher.signatures(docs)
    alone = np.vstack([hasher.signatures([d])[0] for d in docs])
    assert (together == alone).all()


def test_a_batch_of_files_each_too_short_for_a_shingle_has_no_signatures() -> None:
    # Together they hold enough tokens for a shingle; none does on its own.
    docs = [b"import os", b"x = 1", b"__all__ = []", b"pass"]
    sig, has = MinHasher(num_perm=16).signatures(docs)
    assert sig.shape == (4, 16) and not has.any()
