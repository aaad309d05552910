"""Stacked, slot-indexed LoRA gives PEFT's outputs, for every adapter of a mixed batch."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from tailor.stages.serve.batched_lora import StackedLora
from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.generation import GenerationRequest
from tailor.storage import FileStore

from .conftest import adapter_key

TOL = 1e-4
TARGETS = ["c_attn", "c_proj", "c_fc"]


def save_adapter(model: Any, config: LoraConfig, seed: int, out: Path) -> Path:
    """Save a LoRA adapter of `model` with random A and B (so it changes the outputs)."""
    peft_model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(seed)
    for name, param in peft_model.named_parameters():
        if "lora_" in name:
            param.data = torch.randn(param.shape, generator=gen) * 0.3
    peft_model.save_pretrained(out)
    return out


def peft_reference(base: Any, paths: list[Path]) -> Any:
    """PEFT itself holding every adapter, named a0, a1, ..."""
    model = PeftModel.from_pretrained(base, str(paths[0]), adapter_name="a0")
    for i, path in enumerate(paths[1:], start=1):
        model.load_adapter(str(path), adapter_name=f"a{i}")
    return model.eval()


def assert_matches_peft(new_base: Any, paths: list[Path], vocab: int) -> None:
    """Mixed batches (adapters in any order, base rows) give PEFT's logits within TOL."""
    reference = peft_reference(new_base(), paths)
    model = new_base().eval()
    stacked = StackedLora(model)
    slots = [stacked.load(p) for p in paths]
    names = [f"a{i}" for i in range(len(paths))] + ["__base__"]
    row_slots = [*slots, 0]
    ids = torch.randint(0, vocab, (len(names), 9), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        for order in (list(range(len(names))), list(reversed(range(len(names))))):
            want = reference(input_ids=ids, adapter_names=[names[i] for i in order]).logits
            with stacked.route([row_slots[i] for i in order]):
                got = model(input_ids=ids).logits
            assert torch.allclose(got, want, atol=TOL, rtol=0), (got - want).abs().max()
        for name, slot in zip(names, row_slots, strict=True):  # one adapter for every row
            want = reference(input_ids=ids, adapter_names=[name] * len(names)).logits
            with stacked.route([slot] * len(names)):
                got = model(input_ids=ids).logits
            assert torch.allclose(got, want, atol=TOL, rtol=0)


def test_gptbigcode_adapters_of_other_ranks_match_peft(tiny_base: Path, tmp_path: Path) -> None:
    def new_base() -> Any:
        return AutoModelForCausalLM.from_pretrained(tiny_base)

    configs = [
        LoraConfig(r=4, lora_alpha=16, target_modules=TARGETS),
        LoraConfig(r=8, lora_alpha=8, use_rslora=True, target_modules=TARGETS),
        LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"]),  # one layer kind only
    ]
    paths = [save_adapter(new_base(), c, i, tmp_path / f"a{i}") for i, c in enumerate(configs)]
    assert_matches_peft(new_base, paths, vocab=400)


def test_conv1d_fan_in_fan_out_adapters_match_peft(tmp_path: Path) -> None:
    config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=97, n_positions=32)
    torch.manual_seed(0)
    state = GPT2LMHeadModel(config).state_dict()

    def new_base() -> Any:
        model = GPT2LMHeadModel(config)
        model.load_state_dict(state)
        return model

    lora = LoraConfig(r=4, lora_alpha=8, fan_in_fan_out=True, target_modules=TARGETS)
    paths = [save_adapter(new_base(), lora, i, tmp_path / f"a{i}") for i in range(2)]
    assert_matches_peft(new_base, paths, vocab=97)


def test_a_freed_slot_serves_the_next_adapter(tiny_base: Path, tmp_path: Path) -> None:
    def new_base() -> Any:
        return AutoModelForCausalLM.from_pretrained(tiny_base)

    lora = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS)
    first, second = (save_adapter(new_base(), lora, i, tmp_path / f"a{i}") for i in range(2))
    model = new_base().eval()
    stacked = StackedLora(model)
    stacked.unload(stacked.load(first))
    slot = stacked.load(second)
    reference = peft_reference(new_base(), [second])
    ids = torch.arange(12).view(2, 6)
    with torch.inference_mode():
        want = reference(input_ids=ids, adapter_names=["a0", "__base__"]).logits
        with stacked.route([slot, 0]):
            got = model(input_ids=ids).logits
    assert slot == 1
    assert torch.allclose(got, want, atol=TOL, rtol=0)


def greedy(engine: TailorEngine, keys: list[str | None], concurrent: bool) -> list[str]:
    """Greedy completions, one per adapter key, run one by one or all at once."""
    prompts = ["def f(x):\n", "import os\n", "class A:\n", "x = ["]

    def one(i: int) -> str:
        request = GenerationRequest(
            prompt=prompts[i % len(prompts)],
            adapter=keys[i],
            max_new_tokens=12,  # type: ignore[arg-type]
            ignore_eos=True,
            stop_at_block_end=False,
        )
        return engine.generate(request)[0].text

    if not concurrent:
        return [one(i) for i in range(len(keys))]
    out: dict[int, str] = {}
    threads = [
        threading.Thread(target=lambda i=i: out.__setitem__(i, one(i))) for i in range(len(keys))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [out[i] for i in range(len(keys))]


def test_engine_serves_lora_bias_through_peft_beside_stacked_adapters(
    tiny_base: Path, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "objects")
    configs = {
        "plain": LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS),
        "biased": LoraConfig(r=4, lora_alpha=8, lora_bias=True, target_modules=TARGETS),
    }
    keys: list[str | None] = []
    for i, (name, config) in enumerate(configs.items()):
        base = AutoModelForCausalLM.from_pretrained(tiny_base)
        path = save_adapter(base, config, i + 10, tmp_path / name)
        key = adapter_key("acme", name, "1")
        for fname in ("adapter_config.json", "adapter_model.safetensors"):
            store.upload_file(path / fname, f"{key}/{fname}")
        keys.append(key)
    keys.append(None)
    # One at a time: transformers' loading is not safe in two threads at once.
    batched = TailorEngine(str(tiny_base), store)
    batched.wait_ready(120)
    reference = TailorEngine(str(tiny_base), store, lora_backend="peft")
    reference.wait_ready(120)
    # Room for one adapter: each request evicts the other one, from the slots or from PEFT.
    size = max((store.root / str(k) / "adapter_model.safetensors").stat().st_size for k in keys[:2])
    tight = TailorEngine(str(tiny_base), store, adapter_budget_bytes=size)
    tight.wait_ready(120)
    alternating = [keys[0], keys[1], keys[0], keys[1], None]
    try:
        want = greedy(reference, keys, concurrent=False)
        got = greedy(batched, keys, concurrent=True)
        slots = {key: hot.slot for key, hot in batched.adapters.hot.items()}
        want_alternating = greedy(reference, alternating, concurrent=False)
        got_alternating = greedy(tight, alternating, concurrent=False)
    finally:
        batched.close()
        reference.close()
        tight.close()
    assert got == want
    assert got_alternating == want_alternating
    assert len(set(want)) == 3
    assert slots[keys[0]] > 0 and slots[keys[1]] == 0  # the biased one's rows went through PEFT
