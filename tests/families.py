"""Tiny random models of each code-model family: its own transformers config, a tokenizer with
its real special tokens (and its BOS where the real tokenizer adds one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tailor.demo.sample_data import house_style_documents
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
