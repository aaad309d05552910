"""Each code-model family end to end: LoRA training -> stacked-LoRA serving -> FIM over HTTP.

Every family's base is a tiny randomly initialised model built from its own transformers
config, with a tokenizer carrying that family's real special tokens (and its BOS where the
real tokenizer adds one). Nothing is told the family: training and serving detect it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from tailor.fim import (
    CODEGEMMA,
    CODELLAMA,
    CODESTRAL,
    DEEPSEEK_CODER,
    QWEN_CODER,
    STARCODER,
    STARCODER2,
    FimStyle,
)
from tailor.serve.app import create_serving_app
from tailor.serve.callers import lookup_from
from tailor.serve.engine import TailorEngine
from tailor.storage import FileStore
from tailor.train.entrypoint import run_training
from tailor.train.fim import tokenizer_fim_ids
from tailor.train.sample_data import house_style_documents, write_documents
from tests.train.conftest import DATASET, TEAM, make_spec

from .conftest import start_server

pytestmark = pytest.mark.slow
PREFIX, SUFFIX = "def add(a, b):\n    ", "\n\ndef sub(a, b):\n    return a - b\n"
WIDTH = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
HEADS = {"num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}


@dataclass(frozen=True)
class Family:
    """A family's style, its architecture and the texts its real tokenizer has."""

    style: FimStyle
    config: Callable[[int], Any]  # vocab size -> transformers config
    eos: str
    bos: str | None  # prepended to every encoding, as the real tokenizer does
    prompt: tuple[str, ...]  # the FIM prompt, PRE/SUF standing for the encoded texts


def _gpt_bigcode(vocab: int) -> Any:
    from transformers import GPTBigCodeConfig

    return GPTBigCodeConfig(vocab_size=vocab, n_positions=512, n_embd=64, n_layer=2, n_head=4)


def _arch(name: str, **extra: Any) -> Callable[[int], Any]:
    def build(vocab: int) -> Any:
        import transformers

        return getattr(transformers, name)(vocab_size=vocab, **WIDTH, **HEADS, **extra)

    return build


DEEPSEEK_BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
DEEPSEEK_EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"
DEEPSEEK_FIM = tuple(f"<\uff5cfim\u2581{t}\uff5c>" for t in ("begin", "hole", "end"))
FAMILIES = (
    Family(
        STARCODER,
        _gpt_bigcode,
        "<|endoftext|>",
        None,
        ("<fim_prefix>", "PRE", "<fim_suffix>", "SUF", "<fim_middle>"),
    ),
    Family(
        STARCODER2,
        _arch("Starcoder2Config"),
        "<|endoftext|>",
        None,
        ("<fim_prefix>", "PRE", "<fim_suffix>", "SUF", "<fim_middle>"),
    ),
    Family(
        CODELLAMA,
        _arch("LlamaConfig"),
        "</s>",
        "<s>",
        ("<s>", "▁<PRE>", "PRE", "▁<SUF>", "SUF", "▁<MID>"),
    ),
    Family(
        QWEN_CODER,
        _arch("Qwen2Config"),
        "<|endoftext|>",
        None,
        ("<|fim_prefix|>", "PRE", "<|fim_suffix|>", "SUF", "<|fim_middle|>"),
    ),
    Family(
        DEEPSEEK_CODER,
        _arch("LlamaConfig"),
        DEEPSEEK_EOS,
        DEEPSEEK_BOS,
        (DEEPSEEK_BOS, DEEPSEEK_FIM[0], "PRE", DEEPSEEK_FIM[1], "SUF", DEEPSEEK_FIM[2]),
    ),
    Family(
        CODESTRAL,
        _arch("MistralConfig", sliding_window=None),
        "</s>",
        "<s>",
        ("<s>", "[SUFFIX]", "SUF", "[PREFIX]", "PRE"),  # mistral-common's encode_fim
    ),
    Family(
        CODEGEMMA,
        _arch("GemmaConfig", head_dim=16),
        "<eos>",
        "<bos>",
        ("<bos>", "<|fim_prefix|>", "PRE", "<|fim_suffix|>", "SUF", "<|fim_middle|>"),
    ),
)


def build_tokenizer(family: Family, texts: list[str]) -> Any:
    """A byte-level BPE tokenizer whose special tokens are the family's, BOS added as it is."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    s = family.style
    fim = [s.prefix, s.suffix, s.middle, *s.extra, *s.repo_tokens]
    specials = [t for t in (family.bos, family.eos) if t is not None] + fim
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    if family.bos is not None:
        bos = (family.bos, tok.token_to_id(family.bos))
        tok.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A", special_tokens=[bos]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=family.bos,
        eos_token=family.eos,
        pad_token=family.eos,
        additional_special_tokens=fim,
        model_max_length=512,
        clean_up_tokenization_spaces=False,
    )


def build_base(family: Family, out: Path) -> Path:
    """The family's tiny random base (its own config class) and tokenizer, saved to `out`."""
    from transformers import AutoModelForCausalLM

    texts = [content for _, content, _ in house_style_documents(24, 6)]
    tokenizer = build_tokenizer(family, texts)
    config = family.config(len(tokenizer))
    config.eos_token_id = config.pad_token_id = tokenizer.eos_token_id
    config.bos_token_id = tokenizer.bos_token_id
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


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


def train_adapter(base: Path, store: FileStore, work: Path) -> str:
    """A few LoRA steps through the training entry; the adapter's store key."""
    write_documents(store, TEAM, DATASET, house_style_documents(24, 6), rows_per_shard=10)
    spec = make_spec(base, max_steps=3, seq_len=64, fim_rate=1.0, eval_batches=1)
    result = run_training(spec, store, job_id="job-family", work_dir=work)
    assert result.method == "lora"
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
