"""Fixtures for the adapter tests: tiny random GPTBigCode bases and seeded LoRA adapters.

Most bases use the tiny model's own recipe (`tiny_config`, `train_tokenizer`) with random
weights: these tests check numerics and shape rules, not completion quality, so they skip
pre-training. One export test runs on the real pre-trained tiny base as well.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from sqlalchemy.orm import Session
from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM, PreTrainedTokenizerFast

from tailor.demo.tiny import EOS, tiny_base_cached, tiny_config, train_tokenizer
from tailor.stages.package.artifacts import write_manifest
from tailor.stages.package.loading import load_base, load_with_adapters
from tailor.stages.package.spec import AdapterManifest
from tests.conftest import register_base

# The same cache the train and evaluate tests use: the pre-trained tiny base is built once.
CACHE_ROOT = Path(os.environ.get("TAILOR_TEST_CACHE", "/tmp/tailor-test-cache"))
TARGETS = ["c_attn", "c_proj", "c_fc"]
BASE_NAME = "tiny-base"
PROMPT = "def add(a, b):\n    return a + b\n"
_TEXTS = [PROMPT * 3, "import os\nprint(os.getcwd())\n" * 3, "class A:\n    pass\n" * 3]


def _save_random_base(
    out: Path, config: GPTBigCodeConfig, tokenizer: PreTrainedTokenizerFast, seed: int
) -> Path:
    torch.manual_seed(seed)
    GPTBigCodeForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """The tiny model's byte-level BPE tokenizer with FIM tokens, trained on a few lines."""
    return train_tokenizer(_TEXTS, vocab_size=300)


def _config(tokenizer: PreTrainedTokenizerFast, **overrides: object) -> GPTBigCodeConfig:
    eos, pad = tokenizer.convert_tokens_to_ids(EOS), tokenizer.pad_token_id
    config = tiny_config(len(tokenizer), eos, pad)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, tokenizer: PreTrainedTokenizerFast) -> Path:
    """A randomly initialised tiny GPTBigCode base (multi-query) with its tokenizer."""
    out = tmp_path_factory.mktemp("tiny-base")
    return _save_random_base(out, _config(tokenizer), tokenizer, seed=0)


@pytest.fixture(scope="session")
def pretrained_tiny_base() -> Path:
    """The quickstart's pre-trained tiny base (`build_tiny_base`), from the shared cache."""
    return tiny_base_cached(CACHE_ROOT)


@pytest.fixture(scope="session")
def sibling_base(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    """The tiny base with every weight nudged: a sibling fine-tune of the same shapes."""
    model = load_base(tiny_base)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn(param.shape, generator=gen))
    out = tmp_path_factory.mktemp("sibling-base")
    model.save_pretrained(out)
    PreTrainedTokenizerFast.from_pretrained(tiny_base).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def wider_base(
    tmp_path_factory: pytest.TempPathFactory, tokenizer: PreTrainedTokenizerFast
) -> Path:
    """A tiny base with a different hidden size (n_embd 64 instead of 128)."""
    out = tmp_path_factory.mktemp("wider-base")
    return _save_random_base(out, _config(tokenizer, n_embd=64), tokenizer, seed=1)


@pytest.fixture(scope="session")
def deeper_base(
    tmp_path_factory: pytest.TempPathFactory, tokenizer: PreTrainedTokenizerFast
) -> Path:
    """A tiny base with one more layer than the tiny base."""
    out = tmp_path_factory.mktemp("deeper-base")
    return _save_random_base(out, _config(tokenizer, n_layer=3), tokenizer, seed=2)


def make_adapter(
    base_dir: Path,
    out: Path,
    *,
    seed: int,
    r: int = 4,
    alpha: int = 8,
    base_model: str = BASE_NAME,
    targets: list[str] = TARGETS,
    **lora: object,
) -> Path:
    """A LoRA adapter on the GPTBigCode targets with seeded non-zero lora_B, plus tailor.json.

    `lora` passes more LoraConfig fields (rank_pattern, alpha_pattern, ...).
    """
    torch.manual_seed(seed)  # lora_A's Kaiming init draws from the global generator
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, **lora)  # type: ignore[arg-type]
    model = get_peft_model(load_base(base_dir), config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:  # PEFT starts B at zero: the adapter would change nothing
                param.copy_(0.1 * torch.randn(param.shape, generator=gen))
    model.save_pretrained(out, save_embedding_layers=False)  # as training saves adapters
    write_manifest(
        out,
        AdapterManifest(
            base_model=base_model,
            base_revision="r1",
            dataset_id="ds-1",
            metrics={"fim_exact_match": 0.5},
        ),
    )
    return out


@pytest.fixture(scope="session")
def adapter_a(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    """Rank-4 adapter, seed 1 (the team's code-completion adapter)."""
    return make_adapter(tiny_base, tmp_path_factory.mktemp("adapter-a"), seed=1)


@pytest.fixture(scope="session")
def adapter_b(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    """Rank-4 adapter, seed 2 (a chat-assistant adapter)."""
    return make_adapter(tiny_base, tmp_path_factory.mktemp("adapter-b"), seed=2)


@pytest.fixture(scope="session")
def adapter_c(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    """Rank-8 adapter, seed 3, alpha 16."""
    return make_adapter(tiny_base, tmp_path_factory.mktemp("adapter-c"), seed=3, r=8, alpha=16)


@pytest.fixture(scope="session")
def input_ids(tokenizer: PreTrainedTokenizerFast) -> torch.Tensor:
    """A fixed prompt, tokenized."""
    return torch.tensor([tokenizer(PROMPT)["input_ids"]])


def logits(base_dir: Path, adapter_dir: Path | None, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits of the base, or of the base with one adapter attached, on `input_ids`."""
    if adapter_dir is None:
        model = load_base(base_dir)
    else:
        model = load_with_adapters(base_dir, {"default": adapter_dir})
    with torch.no_grad():
        return model(input_ids=input_ids).logits


def in_catalog(session: Session, base: Path, revision: str | None = None) -> str:
    """Register a base directory in the platform's catalog under its folder's name."""
    register_base(session, base.name, base, family="gpt_bigcode", revision=revision)
    return base.name


def set_manifest(adapter_dir: Path, **changes: object) -> None:
    """Rewrite fields of an adapter directory's tailor.json."""
    path = adapter_dir / "tailor.json"
    data = json.loads(path.read_text()) | changes
    path.write_text(json.dumps(data))
