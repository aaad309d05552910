"""Parquet shards and the dataset's object layout.

`teams/<team>/datasets/<id>/shard-NNNNN.parquet`, `dedup-index.npz` and `manifest.json`.
Names are deterministic, so a re-run overwrites instead of adding; the manifest goes last,
so a dataset with a manifest is complete.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from tailor.storage import ObjectStore, team_prefix

SCHEMA = pa.schema(
    [
        ("repo", pa.string()),
        ("path", pa.string()),
        ("language", pa.string()),
        ("content", pa.string()),
        ("sha", pa.string()),
        ("size", pa.int64()),
        ("commit", pa.string()),
        ("split", pa.string()),
    ]
)
SHARD_RE = re.compile(r"shard-(\d{5})\.parquet$")
DEFAULT_SHARD_BYTES = 128 << 20


@dataclass(frozen=True)
class Row:
    """One file of the dataset, as stored."""

    repo: str
    path: str
    language: str
    content: str
    size: int
    commit: str
    split: str


def dataset_prefix(team: str, dataset_id: str) -> str:
    """`teams/<team>/datasets/<id>/`."""
    return f"{team_prefix(team)}datasets/{dataset_id}/"


def split_of(repo: str, path: str, holdout_fraction: float) -> str:
    """'holdout' for a stable share of files, chosen by a hash of repo and path."""
    h = xxhash.xxh3_64_intdigest(f"{repo}\0{path}".encode())
    return "holdout" if h / 2**64 < holdout_fraction else "train"


def _table(rows: list[Row]) -> pa.Table:
    encoded = [r.content.encode("utf-8", "surrogatepass") for r in rows]
    data = {
        "repo": [r.repo for r in rows],
        "path": [r.path for r in rows],
        "language": [r.language for r in rows],
        "content": [r.content for r in rows],
        "sha": [hashlib.sha256(b).hexdigest() for b in encoded],
        "size": [r.size for r in rows],
        "commit": [r.commit for r in rows],
        "split": [r.split for r in rows],
    }
    return pa.Table.from_pydict(data, schema=SCHEMA)


def _groups(rows: Iterable[Row], target_bytes: int) -> Iterable[list[Row]]:
    group: list[Row] = []
    size = 0
    for row in rows:
        if group and size + row.size > target_bytes:
            yield group
            group, size = [], 0
        group.append(row)
        size += row.size
    if group:
        yield group


def write_shards(
    rows: Iterable[Row],
    store: ObjectStore,
    prefix: str,
    *,
    target_bytes: int = DEFAULT_SHARD_BYTES,
) -> list[dict[str, int | str]]:
    """Write rows in order as shard-00000.parquet, ...; returns [{key, rows, bytes}].

    `rows` may be a generator: only one shard's rows are held at a time.
    """
    shards: list[dict[str, int | str]] = []
    with tempfile.TemporaryDirectory(prefix="tailor-shards-") as tmp:
        for i, group in enumerate(_groups(rows, target_bytes)):
            key = f"{prefix}shard-{i:05d}.parquet"
            path = Path(tmp) / f"shard-{i:05d}.parquet"
            pq.write_table(_table(group), path, compression="zstd", row_group_size=2048)
            store.upload_file(path, key)
            shards.append({"key": key, "rows": len(group), "bytes": path.stat().st_size})
            path.unlink()
    return shards


def remove_stale_shards(store: ObjectStore, prefix: str, keep: set[str]) -> int:
    """Delete shards under `prefix` not in `keep` (left by an earlier, larger run)."""
    stale = [k for k in store.list(prefix) if SHARD_RE.search(k) and k not in keep]
    for key in stale:
        store.delete_prefix(key)
    return len(stale)
