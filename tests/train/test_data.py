"""Datasets stream from the team's parquet shards; a bad dataset says what is wrong with it."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tailor.demo.sample_data import house_style_documents, write_documents
from tailor.stages.train import data
from tailor.stages.train.errors import DatasetError
from tailor.stages.train.fim import tokenizer_fim_ids
from tailor.stages.train.packing import PackingStats
from tailor.storage import FileStore
from tests.train.conftest import DATASET, TEAM


def _pipeline(tokenizer: Any, fim_rate: float = 0.5) -> data.TokenPipeline:
    return data.token_pipeline(tokenizer, tokenizer_fim_ids(tokenizer, None), fim_rate, 0.5)


def test_the_manifest_lists_the_harvest_layout(dataset: FileStore) -> None:
    manifest = data.read_manifest(dataset, TEAM, DATASET)

    assert [s.key for s in manifest.shards] == [
        f"teams/{TEAM}/datasets/{DATASET}/shard-{n:05d}.parquet" for n in range(3)
    ]
    assert sum(s.rows for s in manifest.shards) == 30


def test_splits_stream_separately_from_the_shards(dataset: FileStore, tmp_path: Path) -> None:
    manifest = data.read_manifest(dataset, TEAM, DATASET)

    train = list(data.iter_texts(dataset, manifest.shards, "train", tmp_path / "scratch"))
    holdout = list(data.iter_texts(dataset, manifest.shards, "holdout", tmp_path / "scratch"))

    expected = house_style_documents(24, 6)
    assert train == [c for _, c, s in expected if s == "train"]
    assert holdout == [c for _, c, s in expected if s == "holdout"]
    assert not list((tmp_path / "scratch").iterdir())  # each shard is removed once read


def test_training_rows_are_packed_fim_sequences_without_padding(
    dataset: FileStore, tokenizer: Any, tmp_path: Path
) -> None:
    manifest = data.read_manifest(dataset, TEAM, DATASET)
    stats = PackingStats()
    pipeline = _pipeline(tokenizer)
    fim = tokenizer_fim_ids(tokenizer, None)

    stream = data.training_stream(dataset, manifest, pipeline, 64, 0, tmp_path / "s", stats)
    rows = [next(stream) for _ in range(40)]

    assert {len(r) for r in rows} == {64}
    assert stats.padding_fraction == 0.0
    assert any(fim.middle_id in r for r in rows) and any(tokenizer.eos_token_id in r for r in rows)


def test_the_holdout_rows_are_the_same_every_time(
    dataset: FileStore, tokenizer: Any, tmp_path: Path
) -> None:
    manifest = data.read_manifest(dataset, TEAM, DATASET)

    first = data.holdout_rows(dataset, manifest, _pipeline(tokenizer), 64, 5, tmp_path)
    again = data.holdout_rows(dataset, manifest, _pipeline(tokenizer), 64, 5, tmp_path)

    assert len(first) == 5 and first == again


def test_a_missing_dataset_says_to_run_a_harvest(store: FileStore) -> None:
    with pytest.raises(DatasetError, match=r"not found .* run a harvest first"):
        data.read_manifest(store, TEAM, "nope")


def test_another_teams_dataset_is_not_found(dataset: FileStore) -> None:
    with pytest.raises(DatasetError, match="of team 'other' not found"):
        data.read_manifest(dataset, "other", DATASET)


def test_a_manifest_pointing_into_another_team_is_refused(dataset: FileStore) -> None:
    key = f"teams/{TEAM}/datasets/{DATASET}/manifest.json"
    raw = json.loads(dataset.get_bytes(key))
    raw["shards"][0]["key"] = "teams/rival/datasets/x/shard-00000.parquet"
    dataset.put_bytes(key, json.dumps(raw).encode())

    with pytest.raises(DatasetError, match="lists shards outside teams/acme/"):
        data.read_manifest(dataset, TEAM, DATASET)


def test_an_empty_dataset_is_refused(store: FileStore) -> None:
    write_documents(store, TEAM, "empty", [])

    with pytest.raises(DatasetError, match=r"is empty .* check the repositories"):
        data.read_manifest(store, TEAM, "empty")


def test_a_shard_that_is_not_parquet_is_named(dataset: FileStore, tmp_path: Path) -> None:
    manifest = data.read_manifest(dataset, TEAM, DATASET)
    dataset.put_bytes(manifest.shards[1].key, b"not parquet at all")

    with pytest.raises(DatasetError, match=r"shard-00001.parquet is not a readable parquet"):
        list(data.iter_texts(dataset, manifest.shards, "train", tmp_path))


def test_a_shard_without_the_content_column_is_named(dataset: FileStore, tmp_path: Path) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = data.read_manifest(dataset, TEAM, DATASET)
    sink = io.BytesIO()
    pq.write_table(pa.table({"text": ["x"], "split": ["train"]}), sink)
    dataset.put_bytes(manifest.shards[0].key, sink.getvalue())

    with pytest.raises(DatasetError, match=r"lacks the column\(s\) \['content'\]"):
        list(data.iter_texts(dataset, manifest.shards, "train", tmp_path))


def test_too_little_text_for_one_sequence_is_an_actionable_error(
    store: FileStore, tokenizer: Any, tmp_path: Path
) -> None:
    write_documents(store, TEAM, "tiny", [("a.py", "x = 1\n", "train")])
    manifest = data.read_manifest(store, TEAM, "tiny")

    stream = data.training_stream(store, manifest, _pipeline(tokenizer), 512, 0, tmp_path)
    with pytest.raises(DatasetError, match=r"too little training text .* lower seq_len"):
        next(stream)


def test_shards_are_found_by_listing_when_the_manifest_does_not_list_them(
    dataset: FileStore,
) -> None:
    key = f"teams/{TEAM}/datasets/{DATASET}/manifest.json"
    dataset.put_bytes(key, json.dumps({"stats": {}}).encode())

    manifest = data.read_manifest(dataset, TEAM, DATASET)

    assert [Path(s.key).name for s in manifest.shards] == [
        "shard-00000.parquet",
        "shard-00001.parquet",
        "shard-00002.parquet",
    ]


def test_local_shuffling_keeps_every_row() -> None:
    rows = [[i] for i in range(200)]

    mixed = list(data.shuffled(iter(rows), 16, random.Random(0)))

    assert sorted(mixed) == rows and mixed != rows
