"""Fixtures for the evaluation tests: a team's dataset, the tiny base, a trained adapter."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
from pathlib import Path

import pytest

from tailor.demo.tiny import tiny_base_cached
from tailor.storage import FileStore, ObjectStore

# Shared by every part's tests on this machine: the tiny base is built once per recipe.
CACHE_ROOT = Path(os.environ.get("TAILOR_TEST_CACHE", "/tmp/tailor-test-cache"))
TEAM = "acme"
DATASET = "ds-quill"
ADAPTER_PREFIX = f"teams/{TEAM}/adapters/house-style/1"

_VERBS = ["load", "save", "sync", "audit", "merge", "split", "flush", "check", "route", "price"]
_NOUNS = ["order", "invoice", "ledger", "parcel", "account", "refund", "coupon", "basket"]


def write_dataset(
    store: ObjectStore,
    team: str,
    dataset_id: str,
    files: list[tuple[str, str, str]],
    *,
    shard_rows: int = 32,
) -> None:
    """A harvested dataset in the store's layout: parquet shards and manifest.json.

    `files` are (path, content, split) with split "train" or "holdout"; the columns are
    the harvest's: repo, path, language, content, sha, size, commit, split.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    prefix = f"teams/{team}/datasets/{dataset_id}/"
    shards = []
    for number, start in enumerate(range(0, len(files), shard_rows)):
        chunk = files[start : start + shard_rows]
        table = pa.table(
            {
                "repo": [f"{team}/quill" for _ in chunk],
                "path": [path for path, _, _ in chunk],
                "language": ["python" for _ in chunk],
                "content": [content for _, content, _ in chunk],
                "sha": [hashlib.sha1(c.encode()).hexdigest() for _, c, _ in chunk],
                "size": [len(c.encode()) for _, c, _ in chunk],
                "commit": ["0" * 40 for _ in chunk],
                "split": [split for _, _, split in chunk],
            }
        )
        sink = io.BytesIO()
        pq.write_table(table, sink)
        key = f"{prefix}shard-{number:05d}.parquet"
        store.put_bytes(key, sink.getvalue())
        shards.append({"key": key, "rows": len(chunk), "bytes": len(sink.getvalue())})
    manifest = {"dataset_id": dataset_id, "team": team, "shards": shards, "stats": {}}
    store.put_bytes(prefix + "manifest.json", json.dumps(manifest).encode())


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


def house_style_module(rng: random.Random, index: int) -> str:
    """One module of a team's codebase in a strong house style (quill handlers)."""
    pairs = rng.sample([(v, n) for v in _VERBS for n in _NOUNS], 5)
    header = (
        f'"""Quill handlers, part {index}."""\n\n'
        "from quill.core import QuillContext, QuillResult, quill_log\n\n\n"
    )
    return header + "\n\n".join(_handler(v, n) for v, n in pairs)


def house_style_files(train: int, holdout: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(path, content, split) of a synthetic team codebase; holdout files are distinct."""
    rng = random.Random(seed)
    return [
        (f"quill/handlers_{i:03d}.py", house_style_module(rng, i), split)
        for i, split in enumerate(["train"] * train + ["holdout"] * holdout)
    ]


@pytest.fixture(scope="session")
def tiny_base() -> Path:
    """Directory of the tiny GPTBigCode base model and its FIM tokenizer."""
    return tiny_base_cached(CACHE_ROOT)


@pytest.fixture
def team_store(tmp_path: Path) -> FileStore:
    """A store holding the team's harvested dataset (40 train, 10 holdout files)."""
    store = FileStore(tmp_path / "objects")
    write_dataset(store, TEAM, DATASET, house_style_files(40, 10))
    return store


def train_lora(
    base_dir: Path, texts: list[str], out_dir: Path, *, steps: int, lr: float, seed: int = 0
) -> Path:
    """A LoRA adapter fine-tuned on texts with the FIM objective (peft, a few hundred steps)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tailor.stages.train.data import TokenPipeline, sequences
    from tailor.stages.train.fim import tokenizer_fim_ids

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    # lm_head too: the tiny base is barely past unigram statistics, and attention/MLP
    # adapters alone hardly move its output distribution in a few dozen steps.
    config = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        target_modules=["c_attn", "c_proj", "c_fc", "lm_head"],
    )
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), config)
    pipeline = TokenPipeline(
        encode=lambda t: tokenizer(t, add_special_tokens=False)["input_ids"],
        eos_id=tokenizer.eos_token_id,
        fim_ids=tokenizer_fim_ids(tokenizer, None),
        fim_rate=0.7,
        spm_rate=0.0,
    )
    rng = random.Random(seed)
    rows: list[list[int]] = []
    while len(rows) < steps * 8:  # each pass cuts new FIM examples from the same files
        rows.extend(sequences(rng.sample(texts, len(texts)), pipeline, 128, rng))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    # One thread: the same adapter whatever the core count, and no thread left spinning
    # behind a busy core (on a shared 2-core machine two threads ran several times slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for step in range(steps):
            batch = torch.tensor(rows[step * 8 : (step + 1) * 8])
            model(input_ids=batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(out_dir)
    return out_dir
