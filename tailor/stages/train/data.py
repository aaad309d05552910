"""Read a harvested dataset from the object store and turn it into training sequences.

Shards are read one at a time and one row batch at a time (`iter_batches`), so memory
holds one shard file on disk and a few hundred rows, never the whole dataset.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailor.fim import FimTokens
from tailor.stages.harvest.outcome import empty_reason
from tailor.stages.train.errors import DatasetError
from tailor.stages.train.fim import encode_document
from tailor.stages.train.packing import PackingStats, pack
from tailor.stages.train.repo_level import SourceFile, file_documents
from tailor.storage import ObjectStore, StoreError

SPLITS = ("train", "holdout")
COLUMNS = ["content", "split"]
_WHERE = ["repo", "path"]  # read when the shard has them (repository-level examples)
_ROWS_PER_READ = 128
_SHARD = re.compile(r"shard-\d{5}\.parquet$")


@dataclass(frozen=True)
class Shard:
    """One parquet file of a dataset."""

    key: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """A dataset's `manifest.json`: its shards and summary statistics."""

    dataset_id: str
    team: str
    shards: list[Shard]
    stats: dict[str, Any] = field(default_factory=dict)


def manifest_key(team: str, dataset_id: str) -> str:
    """Where a dataset's manifest lives."""
    return f"teams/{team}/datasets/{dataset_id}/manifest.json"


def parse_manifest(
    raw: dict[str, Any], team: str, dataset_id: str, listed: list[str] | None = None
) -> Manifest:
    """Validate a manifest's content against the team and id it was read for.

    Shards come from the manifest's `shards` list, or, when it has none, from the
    `shard-NNNNN.parquet` keys listed under the dataset's prefix (`listed`).
    """
    named_team, named_id = raw.get("team", team), raw.get("dataset_id", dataset_id)
    if named_team != team or named_id != dataset_id:
        raise DatasetError(
            f"manifest of dataset {dataset_id!r} names team {raw.get('team')!r} and "
            f"id {raw.get('dataset_id')!r}: it does not belong to team {team!r}"
        )
    if "shards" not in raw:
        raw = {**raw, "shards": [{"key": k, "rows": -1, "bytes": -1} for k in listed or []]}
    try:
        shards = [
            Shard(s["key"], int(s.get("rows", -1)), int(s.get("bytes", -1))) for s in raw["shards"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"manifest of dataset {dataset_id!r} is malformed: {exc!r}") from exc
    prefix = f"teams/{team}/"
    outside = [s.key for s in shards if not s.key.startswith(prefix)]
    if outside:
        raise DatasetError(f"dataset {dataset_id!r} lists shards outside {prefix}: {outside[:3]}")
    return Manifest(dataset_id, team, shards, dict(raw.get("stats") or {}))


def read_manifest(store: ObjectStore, team: str, dataset_id: str) -> Manifest:
    """The manifest of a team's dataset; a clear error when it is missing or has no rows."""
    key = manifest_key(team, dataset_id)
    try:
        raw = json.loads(store.get_bytes(key))
    except StoreError as exc:
        raise DatasetError(
            f"dataset {dataset_id!r} of team {team!r} not found (no {key}); "
            "run a harvest first or check the dataset id"
        ) from exc
    prefix = f"teams/{team}/datasets/{dataset_id}/"
    listed = [k for k in store.list(prefix) if _SHARD.search(k)] if "shards" not in raw else None
    manifest = parse_manifest(raw, team, dataset_id, listed)
    # rows == -1: not counted in the manifest; emptiness then shows while streaming.
    if not manifest.shards or sum(s.rows for s in manifest.shards) == 0:
        raise DatasetError(empty_reason(dataset_id, team, manifest.stats))
    return manifest


def iter_texts(
    store: ObjectStore,
    shards: Iterable[Shard],
    split: str,
    scratch: Path,
) -> Iterator[str]:
    """The `content` of every row of a split, shard by shard, row batch by row batch."""
    return (f.content for f in iter_files(store, shards, split, scratch))


def iter_files(
    store: ObjectStore,
    shards: Iterable[Shard],
    split: str,
    scratch: Path,
) -> Iterator[SourceFile]:
    """Every row of a split as a file (repository, path, content), in the harvest's order."""
    scratch.mkdir(parents=True, exist_ok=True)
    for shard in shards:
        local = scratch / Path(shard.key).name
        try:
            store.download_file(shard.key, local)
        except (StoreError, OSError) as exc:
            raise DatasetError(
                f"shard {shard.key} listed by the dataset's manifest cannot be read: {exc}; "
                "re-run the harvest"
            ) from exc
        try:
            yield from _split_files(local, shard.key, split)
        finally:
            local.unlink(missing_ok=True)


def _split_files(local: Path, key: str, split: str) -> Iterator[SourceFile]:
    """One shard's rows of a split; a DatasetError naming the shard if it is bad."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(local)
        missing = [c for c in COLUMNS if c not in parquet.schema_arrow.names]
        if missing:
            raise DatasetError(
                f"shard {key} lacks the column(s) {missing} the harvest writes "
                f"(it has {parquet.schema_arrow.names}); re-run the harvest"
            )
        where = [c for c in _WHERE if c in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(_ROWS_PER_READ, columns=COLUMNS + where):
            cols = batch.to_pydict()
            n = len(cols["content"])
            repos, paths = (cols.get(c) or [""] * n for c in _WHERE)
            for c, s, r, p in zip(cols["content"], cols["split"], repos, paths, strict=True):
                if s == split and c:
                    yield SourceFile(r or "", p or "", c)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"shard {key} is not a readable parquet file: {exc}") from exc


@dataclass(frozen=True)
class TokenPipeline:
    """How documents become token ids: the tokenizer's encoder and the FIM settings."""

    encode: Callable[[str], list[int]]
    eos_id: int
    fim_ids: FimTokens | None
    fim_rate: float
    spm_rate: float
    repo_rate: float = 0.0  # share of repository-level examples, where the family has them


def sequences(
    texts: Iterable[str],
    pipeline: TokenPipeline,
    seq_len: int,
    rng: random.Random,
    stats: PackingStats | None = None,
) -> Iterator[list[int]]:
    """Packed seq_len-token sequences of FIM-transformed documents."""
    p = pipeline
    docs = (encode_document(t, p.encode, p.fim_ids, rng, p.fim_rate, p.spm_rate) for t in texts)
    return pack(docs, seq_len, p.eos_id, stats)


def file_sequences(
    files: Iterable[SourceFile],
    pipeline: TokenPipeline,
    seq_len: int,
    rng: random.Random,
    stats: PackingStats | None = None,
) -> Iterator[list[int]]:
    """Packed sequences of files, some as repository-level examples (`repo_rate`)."""
    p = pipeline
    rates = (p.fim_rate, p.spm_rate, p.repo_rate)
    return pack(file_documents(files, p.encode, p.fim_ids, rng, rates), seq_len, p.eos_id, stats)


def shuffled(rows: Iterable[list[int]], buffer: int, rng: random.Random) -> Iterator[list[int]]:
    """Rows in a locally shuffled order (a bounded buffer, so streaming stays streaming)."""
    pool: list[list[int]] = []
    for row in rows:
        pool.append(row)
        if len(pool) >= buffer:
            yield pool.pop(rng.randrange(len(pool)))
    rng.shuffle(pool)
    yield from pool


def training_stream(
    store: ObjectStore,
    manifest: Manifest,
    pipeline: TokenPipeline,
    seq_len: int,
    seed: int,
    scratch: Path,
    stats: PackingStats | None = None,
) -> Iterator[list[int]]:
    """Train-split sequences, epoch after epoch (shard order reshuffled), without end."""
    rng = random.Random(seed)
    while True:
        shards = list(manifest.shards)
        rng.shuffle(shards)
        files = iter_files(store, shards, "train", scratch)
        produced = False
        for row in shuffled(file_sequences(files, pipeline, seq_len, rng, stats), 64, rng):
            produced = True
            yield row
        if not produced:
            raise DatasetError(
                f"dataset {manifest.dataset_id!r} has too little training text for one "
                f"{seq_len}-token sequence; lower seq_len or add repositories"
            )


def holdout_rows(
    store: ObjectStore,
    manifest: Manifest,
    pipeline: TokenPipeline,
    seq_len: int,
    limit: int,
    scratch: Path,
) -> list[list[int]]:
    """Up to `limit` held-out sequences, the same every call (fixed seed, fixed order)."""
    texts = iter_texts(store, manifest.shards, "holdout", scratch)
    rows: list[list[int]] = []
    for row in sequences(texts, pipeline, seq_len, random.Random(1234)):
        rows.append(row)
        if len(rows) == limit:
            break
    return rows


def count_train_tokens(
    store: ObjectStore, manifest: Manifest, pipeline: TokenPipeline, scratch: Path
) -> int:
    """Tokens in one pass over the train split (+1 EOS per document), for the step count."""
    return sum(
        len(pipeline.encode(t)) + 1 for t in iter_texts(store, manifest.shards, "train", scratch)
    )


def token_pipeline(
    tokenizer: Any,
    fim_ids: FimTokens | None,
    fim_rate: float,
    spm_rate: float,
    repo_rate: float = 0.0,
) -> TokenPipeline:
    """The encoder of a transformers tokenizer, reading special-token text as plain text.

    A source file that contains `<|endoftext|>` or `<fim_prefix>` must not turn into
    control tokens, so the encoder is a copy of the tokenizer with special parsing off.
    """
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.encode_special_tokens = True

    def encode(text: str) -> list[int]:
        ids: list[int] = backend.encode(text, add_special_tokens=False).ids
        return ids

    if tokenizer.eos_token_id is None:
        raise DatasetError("the base model's tokenizer has no EOS token to separate documents")
    eos = int(tokenizer.eos_token_id)
    return TokenPipeline(encode, eos, fim_ids, fim_rate, spm_rate, repo_rate)
