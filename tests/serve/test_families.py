"""Each code-model family end to end: LoRA training -> stacked-LoRA serving -> FIM over HTTP.

Every family's base is a tiny randomly initialised model built from its own transformers
config, with a tokenizer carrying that family's real special tokens (and its BOS where the
real tokenizer adds one). Nothing is told the family: training and serving detect it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tailor.demo.sample_data import house_style_documents, write_documents
from tailor.stages.serve.app import create_serving_app
from tailor.stages.serve.callers import lookup_from
from tailor.stages.serve.engine import TailorEngine
from tailor.stages.train.entrypoint import run_training
from tailor.stages.train.fim import tokenizer_fim_ids
from tailor.storage import FileStore
from tests.families import FAMILIES, Family, build_base
from tests.train.conftest import DATASET, TEAM, make_spec

from .conftest import start_server

pytestmark = pytest.mark.slow
PREFIX, SUFFIX = "def add(a, b):\n    ", "\n\ndef sub(a, b):\n    return a - b\n"


def expected_prompt(family: Family, tokenizer: Any) -> list[int]:
    """The family's FIM prompt, written out by hand from its documented order."""
    pieces = {"PRE": PREFIX, "SUF": SUFFIX}
    ids: list[int] = []
    for part in family.prompt:
        if part in pieces:
            ids += tokenizer(pieces[part], add_special_tokens=False)["input_ids"]
        else:
            ids.append(tokenizer.convert_tokens_to_ids(part))
    return ids


def train_adapter(base: Path, store: FileStore, work: Path, method: str = "lora") -> str:
    """A few LoRA (or QLoRA) steps through the training entry; the adapter's store key."""
    write_documents(store, TEAM, DATASET, house_style_documents(24, 6), rows_per_shard=10)
    spec = make_spec(base, method=method, max_steps=3, seq_len=64, fim_rate=1.0, eval_batches=1)
    result = run_training(spec, store, job_id="job-family", work_dir=work)
    assert (result.method, result.fallback_reason) == (method, None)
    return f"teams/{TEAM}/adapters/{spec.adapter_name}/1"


def serve_fim(base: Path, store: FileStore, adapter: str) -> tuple[str, list[int], bool]:
    """One FIM completion over the OpenAI route: its text, the ids the model saw, stacked?"""
    from openai import OpenAI

    engine = TailorEngine(str(base), store).start()
    seen: list[list[int]] = []
    try:
        engine.wait_ready(120)
        embed = engine.adapters.model.get_input_embeddings()
        embed.register_forward_hook(lambda _m, args, _o: seen.append(args[0][0].tolist()))
        lookup = lookup_from({"tok": TEAM}.get, lambda team, model: adapter)
        live = start_server(create_serving_app(engine, lookup=lookup, base_name="tiny"))
        try:
            client = OpenAI(base_url=f"{live.url}/v1", api_key="tok", max_retries=0)
            out = client.completions.create(
                model="house-style", prompt=PREFIX, suffix=SUFFIX, max_tokens=12, seed=1
            )
        finally:
            live.stop()
        stacked = bool(engine.adapters.hot) and not engine.adapters.peft_in_use
    finally:
        engine.close()
    return out.choices[0].text, seen[0], stacked


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.style.name)
def test_each_family_trains_serves_stacked_lora_and_completes_fim_in_its_own_order(
    family: Family, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    base = build_base(family, tmp_path / "base")
    tokenizer = AutoTokenizer.from_pretrained(base)
    store = FileStore(tmp_path / "objects")
    assert tokenizer_fim_ids(tokenizer, None).style is family.style  # what training detects

    adapter = train_adapter(base, store, tmp_path / "work")
    text, prompt_ids, stacked = serve_fim(base, store, adapter)

    assert prompt_ids == expected_prompt(family, tokenizer)
    assert stacked
    fim = family.style
    assert not any(t in text for t in (fim.prefix, fim.suffix, fim.middle, *fim.repo_tokens))


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.style.name)
def test_each_family_trains_qlora_on_a_4bit_base_on_the_cpu(family: Family, tmp_path: Path) -> None:
    base = build_base(family, tmp_path / "base")
    store = FileStore(tmp_path / "objects")

    adapter = train_adapter(base, store, tmp_path / "work", method="qlora")

    assert store.exists(f"{adapter}/adapter_model.safetensors")
