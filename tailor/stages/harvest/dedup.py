"""Deduplication: exact (hash of whitespace-normalised content) and near (MinHash + LSH).

Documents come in priority order: entries of the team's previous datasets first, then new files
in harvest order. Each cluster keeps its first member, so a file already in an earlier dataset
always wins and a new copy of it is dropped. The index of kept documents (hashes and signatures)
is persisted next to each dataset so the next harvest can dedup against it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import xxhash

from tailor.stages.harvest.minhash import estimate_jaccard
from tailor.stages.harvest.spec import DedupConfig

INDEX_VERSION = 1
_U64 = np.uint64


def exact_key(data: bytes) -> int:
    """Hash of the content with every whitespace run collapsed: reformatting keeps the key."""
    return xxhash.xxh3_64_intdigest(b" ".join(data.split()))


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising false positives + negatives.

    The same criterion as datasketch's MinHashLSH with equal weights, over all pairs at once.
    """
    pairs = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)])
    s = np.linspace(0.0, 1.0, 401)
    p = 1.0 - (1.0 - s[None, :] ** pairs[:, 1:2]) ** pairs[:, 0:1]
    below, above = s <= threshold, s >= threshold
    fp = np.trapezoid(p[:, below], s[below], axis=1)
    fn = np.trapezoid(1.0 - p[:, above], s[above], axis=1)
    bands, rows = pairs[int(np.argmin(fp + fn))]  # the first minimum, as a loop would pick
    return int(bands), int(rows)


@dataclass
class DedupIndex:
    """What later harvests dedup against: exact keys and signatures of kept documents."""

    exact: np.ndarray  # (n,) uint64
    signatures: np.ndarray  # (n, num_perm) uint32
    has_signature: np.ndarray  # (n,) bool
    num_perm: int
    ngram: int
    seed: int

    @classmethod
    def empty(cls, cfg: DedupConfig) -> DedupIndex:
        return cls(
            np.zeros(0, _U64),
            np.zeros((0, cfg.num_perm), np.uint32),
            np.zeros(0, bool),
            cfg.num_perm,
            cfg.ngram,
            cfg.seed,
        )

    def compatible(self, cfg: DedupConfig) -> bool:
        """Signatures compare only under the same permutations and shingle size."""
        return (self.num_perm, self.ngram, self.seed) == (cfg.num_perm, cfg.ngram, cfg.seed)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = np.array([INDEX_VERSION, self.num_perm, self.ngram, self.seed], dtype=np.int64)
        np.savez_compressed(
            buf, meta=meta, exact=self.exact, signatures=self.signatures, has=self.has_signature
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> DedupIndex:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            version, num_perm, ngram, seed = (int(v) for v in z["meta"])
            if version != INDEX_VERSION:
                raise ValueError(f"dedup index version {version}, expected {INDEX_VERSION}")
            return cls(z["exact"], z["signatures"], z["has"], num_perm, ngram, seed)


def merge_indexes(indexes: list[DedupIndex], cfg: DedupConfig) -> DedupIndex:
    """One index from several; incompatible ones contribute exact keys only."""
    merged = DedupIndex.empty(cfg)
    parts = [merged]
    for ix in indexes:
        if ix.compatible(cfg):
            parts.append(ix)
        else:
            n = len(ix.exact)
            parts.append(
                DedupIndex(
                    ix.exact, np.zeros((n, cfg.num_perm), np.uint32), np.zeros(n, bool),
                    cfg.num_perm, cfg.ngram, cfg.seed,
                )
            )  # fmt: skip
    return DedupIndex(
        np.concatenate([p.exact for p in parts]),
        np.concatenate([p.signatures for p in parts]),
        np.concatenate([p.has_signature for p in parts]),
        cfg.num_perm,
        cfg.ngram,
        cfg.seed,
    )


def _band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: one hash per band of `rows` signature values."""
    rng = np.random.default_rng(7)
    mult = rng.integers(1, 1 << 63, rows, dtype=np.uint64) | _U64(1)
    keys = np.empty((len(sig), bands), dtype=_U64)
    # Band by band: a (n, rows) uint64 block at a time, not the whole (n, num_perm) widened
    # copy (8 GB for 4 million signatures), so the peak stays near the index's own size.
    with np.errstate(over="ignore"):
        for band in range(bands):
            block = sig[:, band * rows : (band + 1) * rows].astype(_U64)
            block *= mult
            block.sum(axis=1, dtype=_U64, out=keys[:, band])
    return keys


def _candidate_pairs(keys: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (member, first member) of every bucket with two or more documents."""
    idx = np.flatnonzero(eligible)
    us, vs = [], []
    for band in range(keys.shape[1]):
        order = idx[np.argsort(keys[idx, band], kind="stable")]
        k = keys[order, band]
        new_group = np.r_[True, k[1:] != k[:-1]]
        first = order[np.maximum.accumulate(np.where(new_group, np.arange(len(k)), 0))]
        dup = ~new_group
        us.append(order[dup])
        vs.append(first[dup])
    if not us:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = np.unique(np.stack([np.concatenate(us), np.concatenate(vs)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Connected components by min-label propagation; the label is the smallest member."""
    labels = np.arange(n)
    while True:
        low = np.minimum(labels[u], labels[v])
        new = labels.copy()
        np.minimum.at(new, u, low)
        np.minimum.at(new, v, low)
        new = new[new]  # pointer jumping: halves the remaining path length
        if np.array_equal(new, labels):
            return labels
        labels = new


def near_duplicate_of(
    signatures: np.ndarray, has_signature: np.ndarray, cfg: DedupConfig
) -> np.ndarray:
    """For each document, the index of its cluster's representative (itself if it is one).

    LSH buckets propose pairs; a pair counts when its estimated Jaccard similarity reaches the
    threshold, which removes most of LSH's false positives.
    """
    n = len(signatures)
    if n == 0:
        return np.zeros(0, np.int64)
    bands, rows = lsh_params(cfg.threshold, cfg.num_perm)
    keys = _band_keys(signatures, bands, rows)
    u, v = _candidate_pairs(keys, has_signature)
    if len(u):
        ok = estimate_jaccard(signatures[u], signatures[v]) >= cfg.threshold
        u, v = u[ok], v[ok]
    return _components(n, u, v)


KEEP, EXACT, NEAR = 0, 1, 2


@dataclass
class DedupDecision:
    """Per new document: KEEP, EXACT or NEAR; and how many duplicates an older dataset held."""

    status: np.ndarray  # (n,) int8
    of_previous: int

    @property
    def keep(self) -> np.ndarray:
        return np.asarray(self.status == KEEP)

    def count(self, code: int) -> int:
        return int((self.status == code).sum())


def select_unique(
    previous: DedupIndex,
    exact: np.ndarray,
    signatures: np.ndarray,
    has_signature: np.ndarray,
    cfg: DedupConfig,
) -> DedupDecision:
    """Which new documents to keep: previous entries come first, so they always win."""
    n_prev, n = len(previous.exact), len(exact)
    keys = np.concatenate([previous.exact, exact.astype(_U64)])
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    first_of = first[inverse.reshape(-1)]  # index of the first document with the same key
    own = np.arange(n_prev, n_prev + n)
    status = np.where(first_of[n_prev:] == own, KEEP, EXACT).astype(np.int8)
    eligible = np.concatenate([previous.has_signature, has_signature & (status == KEEP)])
    sigs = np.concatenate([previous.signatures, signatures]) if n_prev else signatures
    rep = near_duplicate_of(sigs, eligible, cfg)[n_prev:] if len(sigs) else own
    near = (status == KEEP) & (rep != own)
    status[near] = NEAR
    dup_of = np.where(status == EXACT, first_of[n_prev:], np.where(near, rep, own))
    of_previous = int(((status != KEEP) & (dup_of < n_prev)).sum())
    return DedupDecision(status, of_previous)


def index_of(
    exact: np.ndarray, signatures: np.ndarray, has_signature: np.ndarray, cfg: DedupConfig
) -> DedupIndex:
    """The index to store with a dataset: its kept documents."""
    return DedupIndex(
        exact.astype(_U64), signatures, has_signature, cfg.num_perm, cfg.ngram, cfg.seed
    )
