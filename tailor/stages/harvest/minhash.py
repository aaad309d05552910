"""MinHash signatures over token shingles, vectorised with numpy over a batch of documents.

Tokens are runs of word bytes (`[A-Za-z0-9_]` and every non-ASCII byte), so formatting and
punctuation never change a shingle. A token's hash is a polynomial over its bytes, read off
prefix sums: h(t) = (P[end] - P[start]) * B^-start (mod 2^32), which needs no Python loop.
Shingles of `ngram` consecutive tokens are mixed to 32 bits (repeats kept: they change no minimum).
The permutations are h_j(x) = a_j * x + b_j (mod 2^32) with random odd a_j: on well-mixed
inputs their estimate matches the MinHash variance sqrt(J(1-J)/num_perm) (tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

_WORD_TABLE = bytes(1 if (c >= 128 or chr(c).isalnum() or c == ord("_")) else 0 for c in range(256))
_BASE = 0x01000193  # FNV prime: odd, so invertible modulo 2^32
_BASE_INV = pow(_BASE, -1, 1 << 32)
_CHUNK = 4096  # shingles per block: 256 x 4096 uint32 (4 MiB) measured fastest here
_U32 = np.uint32
_U64 = np.uint64


def _powers(base: int, n: int) -> np.ndarray:
    out = np.empty(n, dtype=_U32)
    out[0] = 1
    if n > 1:
        out[1:] = base
        with np.errstate(over="ignore"):
            np.cumprod(out[1:], out=out[1:])
    return out


def _mix64(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser: every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> _U64(33))
        x = x * _U64(0xFF51AFD7ED558CCD)
        x = x ^ (x >> _U64(33))
        x = x * _U64(0xC4CEB9FE1A85EC53)
        return x ^ (x >> _U64(33))


@dataclass
class MinHasher:
    """Signatures for a (num_perm, ngram, seed) triple; same triple, comparable signatures."""

    num_perm: int = 256
    ngram: int = 5
    seed: int = 42
    _pow: np.ndarray = field(init=False, repr=False)
    _ipow: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.a = (rng.integers(0, 1 << 32, self.num_perm, dtype=np.uint64) | 1).astype(_U32)
        self.b = rng.integers(0, 1 << 32, self.num_perm, dtype=np.uint64).astype(_U32)
        self.k = rng.integers(1, 1 << 63, self.ngram, dtype=np.uint64) | _U64(1)
        self._pow = _powers(_BASE, 1 << 16)
        self._ipow = _powers(_BASE_INV, 1 << 16)

    def _grow(self, n: int) -> None:
        if n > len(self._pow):
            size = 1 << (n - 1).bit_length()
            self._pow, self._ipow = _powers(_BASE, size), _powers(_BASE_INV, size)

    def shingles(self, docs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(doc index, shingle hash) pairs in document order, repeats kept.

        A minimum over a multiset is the minimum over its set, so signatures need no
        de-duplication: sorting to drop repeats cost more than hashing them (a fifth of the
        signing time).
        """
        buf = b"\n".join(docs)  # "\n" is no word byte: tokens never straddle documents
        n = len(buf)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, _U32)
        self._grow(n)
        marks = np.frombuffer(b"\0" + buf.translate(_WORD_TABLE) + b"\0", dtype=np.int8)
        edges = np.diff(marks)
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        with np.errstate(over="ignore"):
            prefix = np.zeros(n + 1, dtype=_U32)
            np.cumsum(
                np.frombuffer(buf, np.uint8).astype(_U32) * self._pow[:n],
                dtype=_U32,
                out=prefix[1:],
            )
            tokens = (prefix[ends] - prefix[starts]) * self._ipow[starts]
        doc_starts = np.cumsum([0] + [len(d) + 1 for d in docs[:-1]])
        doc_of = np.searchsorted(doc_starts, starts, side="right") - 1
        m = len(tokens) - self.ngram + 1
        if m <= 0:
            return np.zeros(0, np.int64), np.zeros(0, _U32)
        with np.errstate(over="ignore"):
            acc = tokens[:m].astype(_U64) * self.k[0]
            for j in range(1, self.ngram):
                acc += tokens[j : j + m].astype(_U64) * self.k[j]
        valid = doc_of[:m] == doc_of[self.ngram - 1 :]
        if not valid.any():  # every document shorter than a shingle (a batch of tiny files)
            return np.zeros(0, np.int64), np.zeros(0, _U32)
        return doc_of[:m][valid], (_mix64(acc[valid]) >> _U64(32)).astype(_U32)

    def signatures(self, docs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(len(docs), num_perm) uint32 signatures, and which documents had any shingle."""
        doc_of, shingles = self.shingles(docs)
        sig = np.full((len(docs), self.num_perm), np.iinfo(_U32).max, dtype=_U32)
        has = np.zeros(len(docs), dtype=bool)
        has[doc_of] = True
        block = np.empty((self.num_perm, _CHUNK), dtype=_U32)
        a, b = self.a[:, None], self.b[:, None]
        for lo in range(0, len(shingles), _CHUNK):
            xs, ds = shingles[lo : lo + _CHUNK], doc_of[lo : lo + _CHUNK]
            out = block[:, : len(xs)]
            with np.errstate(over="ignore"):
                np.multiply(a, xs[None, :], out=out)
                np.add(out, b, out=out)
            cuts = np.flatnonzero(np.r_[True, ds[1:] != ds[:-1]])
            part = np.minimum.reduceat(out, cuts, axis=1)  # (num_perm, docs in block)
            rows = ds[cuts]  # each document once per block: plain fancy indexing is safe
            sig[rows] = np.minimum(sig[rows], part.T)
        return sig, has


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of row pairs: the share of equal signature entries."""
    return np.asarray((sig_a == sig_b).mean(axis=-1))


@lru_cache(maxsize=4)
def hasher_for(num_perm: int, ngram: int, seed: int) -> MinHasher:
    """A process-wide MinHasher per parameter triple (its power tables are reused)."""
    return MinHasher(num_perm, ngram, seed)
