"""What a new harvest learns from the team's earlier datasets: their dedup index and commits.

Each dataset stores `dedup-index.npz` (exact keys and MinHash signatures of the documents it
kept) next to its shards, so deduplicating against earlier datasets reads a few KB per
thousand files instead of re-reading and re-hashing their shards. A dataset without a usable
index (written by another version, or with other MinHash parameters) is re-hashed from its
shards. Its manifest says at which commit it holds each repository, which is what makes an
incremental re-harvest safe: files unchanged since that commit are already in a dataset.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from tailor.stages.harvest.dedup import DedupIndex, exact_key, merge_indexes
from tailor.stages.harvest.minhash import hasher_for
from tailor.stages.harvest.shards import dataset_prefix
from tailor.stages.harvest.spec import DedupConfig, RepoSource
from tailor.storage import ObjectStore, StoreError

INDEX_NAME = "dedup-index.npz"
MANIFEST_NAME = "manifest.json"
log = logging.getLogger("tailor.harvest")


@dataclass
class Previous:
    """The merged index of earlier datasets, their ids, and which one first harvested each
    (repository, commit) pair."""

    index: DedupIndex
    commits: dict[tuple[str, str], str] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)


def _manifest(store: ObjectStore, prefix: str) -> dict[str, Any] | None:
    try:
        raw = json.loads(store.get_bytes(prefix + MANIFEST_NAME))
    except (StoreError, ValueError):
        return None  # deleted, or never finished: nothing to dedup against
    return raw if isinstance(raw, dict) else None


def index_from_shards(store: ObjectStore, shard_keys: list[str], cfg: DedupConfig) -> DedupIndex:
    """Re-hash a dataset's shards (for datasets without a compatible stored index)."""
    hasher = hasher_for(cfg.num_perm, cfg.ngram, cfg.seed)
    parts = [DedupIndex.empty(cfg)]
    with tempfile.TemporaryDirectory(prefix="tailor-prev-") as tmp:
        for key in shard_keys:
            local = Path(tmp) / "shard.parquet"
            store.download_file(key, local)
            docs = [
                c.encode("utf-8", "surrogatepass")
                for c in pq.read_table(local)["content"].to_pylist()
            ]
            sig, has = hasher.signatures(docs)
            exact = np.array([exact_key(d) for d in docs], dtype=np.uint64)
            parts.append(DedupIndex(exact, sig, has, cfg.num_perm, cfg.ngram, cfg.seed))
    return merge_indexes(parts, cfg)


def _index(
    store: ObjectStore, prefix: str, manifest: dict[str, Any], cfg: DedupConfig
) -> DedupIndex:
    try:
        index = DedupIndex.from_bytes(store.get_bytes(prefix + INDEX_NAME))
        if index.compatible(cfg):
            return index
    except (StoreError, ValueError, KeyError, OSError):
        pass
    keys = [
        str(s["key"])
        for s in manifest.get("shards", [])
        if str(s.get("key", "")).startswith(prefix)
    ]
    return index_from_shards(store, keys, cfg)


def load_previous(
    store: ObjectStore, team: str, dataset_ids: list[str], cfg: DedupConfig
) -> Previous:
    """What the team's earlier datasets hold; datasets that are gone are skipped."""
    indexes, commits, used = [], dict[tuple[str, str], str](), []
    for dataset_id in dataset_ids:  # oldest first: a pair's first holder is kept
        prefix = dataset_prefix(team, dataset_id)
        manifest = _manifest(store, prefix)
        if manifest is None:
            log.info(
                "previous dataset %s has no manifest: not deduplicating against it", dataset_id
            )
            continue
        indexes.append(_index(store, prefix, manifest, cfg))
        for r in manifest.get("repositories", []):
            if r.get("status") == "ok" and r.get("commit"):
                commits.setdefault((str(r["name"]), str(r["commit"])), dataset_id)
        used.append(dataset_id)
    return Previous(merge_indexes(indexes, cfg), commits, used)


def incremental_or_full(source: RepoSource, previous: Previous) -> RepoSource:
    """`source` as given when an earlier dataset holds its last commit, else a full harvest."""
    last = source.last_commit
    if last is None or (source.name, last) in previous.commits:
        return source
    return replace(source, last_commit=None)
