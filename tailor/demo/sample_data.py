"""Write a dataset in the harvest's exact store format from local files (tests, demos, bench).

The harvest stage is the real producer; this writes the same layout:
`teams/<team>/datasets/<id>/shard-NNNNN.parquet` + `manifest.json`, with the columns
repo, path, language, content, sha, size, commit, split.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tailor.demo.stdlib_corpus import read_text
from tailor.stages.train.data import manifest_key
from tailor.storage import ObjectStore

Document = tuple[str, str, str]  # (path, content, split)

_VERBS = ["load", "save", "sync", "audit", "merge", "split", "flush", "check", "route", "price"]
_NOUNS = ["order", "invoice", "ledger", "parcel", "account", "refund", "coupon", "basket"]


def _handler(verb: str, noun: str) -> str:
    return (
        f"def handle_{verb}_{noun}(ctx: QuillContext, payload: dict) -> QuillResult:\n"
        f'    """Handle {verb} {noun} requests for the quill service."""\n'
        f'    quill_log(ctx, "{verb}_{noun}", payload)\n'
        f'    value = payload.get("{noun}")\n'
        f"    if value is None:\n"
        f'        return QuillResult.fail(ctx, "{noun} missing")\n'
        f"    return QuillResult.ok(ctx, {noun}=value)\n"
    )


def house_style_documents(train: int, holdout: int, seed: int = 0) -> list[Document]:
    """A synthetic team codebase in a strong house style; holdout modules are distinct files.

    A base model has never seen this style, so a fine-tune's eval loss falls fast on it.
    """
    rng = random.Random(seed)
    pairs = [(v, n) for v in _VERBS for n in _NOUNS]
    docs = []
    for i, split in enumerate(["train"] * train + ["holdout"] * holdout):
        header = (
            f'"""Quill handlers, part {i}."""\n\n'
            "from quill.core import QuillContext, QuillResult, quill_log\n\n\n"
        )
        body = "\n\n".join(_handler(v, n) for v, n in rng.sample(pairs, 5))
        docs.append((f"quill/handlers_{i:03d}.py", header + body, split))
    return docs


def file_documents(files: Sequence[Path], root: Path, holdout_every: int) -> list[Document]:
    """One document per file; every `holdout_every`-th file goes to the holdout split."""
    docs = []
    for i, path in enumerate(files):
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        held = holdout_every and i % holdout_every == holdout_every - 1
        docs.append((name, read_text(path), "holdout" if held else "train"))
    return docs


def dataset_rows(docs: Sequence[Document], repo: str = "sample") -> list[dict[str, Any]]:
    """The harvest's row for each document (columns of tailor/stages/harvest/shards.py)."""
    rows = []
    for path, content, split in docs:
        blob = content.encode()
        rows.append(
            {
                "repo": repo,
                "path": path,
                "language": "python",
                "content": content,
                "sha": hashlib.sha256(blob).hexdigest(),
                "size": len(blob),
                "commit": "0" * 40,
                "split": split,
            }
        )
    return rows


def write_documents(
    store: ObjectStore,
    team: str,
    dataset_id: str,
    docs: Sequence[Document],
    *,
    rows_per_shard: int = 50,
) -> dict[str, Any]:
    """Store documents as a dataset (parquet shards + manifest, written last); the manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = dataset_rows(docs)
    prefix = f"teams/{team}/datasets/{dataset_id}/"
    shards = []
    for n, start in enumerate(range(0, len(rows), rows_per_shard)):
        table = pa.Table.from_pylist(rows[start : start + rows_per_shard])
        sink = io.BytesIO()
        pq.write_table(table, sink, row_group_size=16)
        key = f"{prefix}shard-{n:05d}.parquet"
        store.put_bytes(key, sink.getvalue())
        shards.append({"key": key, "rows": table.num_rows, "bytes": len(sink.getvalue())})
    holdout = sum(r["split"] == "holdout" for r in rows)
    stats = {"files": len(rows), "train": len(rows) - holdout, "holdout": holdout}
    stats["bytes"] = sum(r["size"] for r in rows)
    manifest = {"dataset_id": dataset_id, "team": team, "shards": shards, "stats": stats}
    store.put_bytes(manifest_key(team, dataset_id), json.dumps(manifest, indent=2).encode())
    return manifest


def write_dataset(
    store: ObjectStore,
    team: str,
    dataset_id: str,
    files: Sequence[Path],
    *,
    root: Path | None = None,
    holdout_every: int = 5,
    rows_per_shard: int = 50,
) -> dict[str, Any]:
    """Store local files as a dataset (parquet shards + manifest); returns the manifest."""
    base = root if root is not None else (files[0].parent if files else Path("."))
    docs = file_documents(files, base, holdout_every)
    return write_documents(store, team, dataset_id, docs, rows_per_shard=rows_per_shard)
