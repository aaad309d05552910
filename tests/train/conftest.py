"""Fixtures for the training tests: the tiny base model, a store, a team's dataset, specs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tailor.demo.sample_data import house_style_documents, write_documents
from tailor.demo.tiny import tiny_base_cached
from tailor.stages.train.spec import TrainSpec
from tailor.storage import FileStore

# Shared by every part's tests on this machine: built once per recipe version.
CACHE_ROOT = Path(os.environ.get("TAILOR_TEST_CACHE", "/tmp/tailor-test-cache"))
TEAM = "acme"
DATASET = "ds-quill"


@pytest.fixture(scope="session")
def tiny_base() -> Path:
    """Directory of the tiny GPTBigCode base model and its tokenizer (save_pretrained)."""
    return tiny_base_cached(CACHE_ROOT)


@pytest.fixture(scope="session")
def tokenizer(tiny_base: Path) -> Any:
    """The tiny base's own tokenizer (byte-level BPE with StarCoder's FIM tokens)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base)


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    """An empty embedded object store."""
    return FileStore(tmp_path / "objects")


@pytest.fixture
def dataset(store: FileStore) -> FileStore:
    """The store holding the team's harvested dataset: 24 train and 6 holdout files."""
    write_documents(store, TEAM, DATASET, house_style_documents(24, 6), rows_per_shard=10)
    return store


def make_spec(base: Path, **changes: Any) -> TrainSpec:
    """A spec for a few seconds of training of the tiny model on the team's dataset."""
    fields: dict[str, Any] = {
        "base_model": "tiny-base",  # its catalog name; the worker sets where its files are
        "base_source": str(base),
        "team": TEAM,
        "dataset_id": DATASET,
        "adapter_name": "house-style",
        "method": "lora",
        "seq_len": 64,
        "micro_batch": 4,
        "grad_accum": 1,
        "max_steps": 6,
        "learning_rate": 5e-3,
        "lr_schedule": "constant",
        "lora_r": 8,
        "eval_batches": 2,
    }
    return TrainSpec.model_validate(fields | changes)
