"""Choices made from the machine and the model: attention kernel, precision, fit, QLoRA support."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tailor.stages.train import base_model
from tailor.stages.train.errors import ModelError
from tailor.stages.train.recipes.qlora import qlora_or_fallback
from tests.train.conftest import make_spec


@pytest.mark.parametrize(
    ("requested", "installed", "capability", "chosen"),
    [
        ("auto", True, (8, 0), "flash_attention_2"),
        ("auto", True, (7, 5), "sdpa"),  # a T4 has no flash-attention 2
        ("auto", False, (9, 0), "sdpa"),
        ("auto", True, None, "sdpa"),  # CPU
        ("eager", True, (8, 0), "eager"),
    ],
)
def test_attention_is_flash_only_where_it_runs(
    requested: str, installed: bool, capability: tuple[int, int] | None, chosen: str
) -> None:
    assert base_model.choose_attention(requested, installed, capability) == chosen


def test_asking_for_flash_attention_where_it_cannot_run_is_an_error() -> None:
    with pytest.raises(ModelError, match="use attention 'auto' or 'sdpa'"):
        base_model.choose_attention("flash_attention_2", False, None)


def test_this_machine_gets_sdpa() -> None:
    # No GPU and no flash-attn package here.
    assert base_model.detect_attention("auto") == "sdpa"


def test_auto_precision_is_bf16_only_on_a_bf16_gpu() -> None:
    assert base_model.choose_precision("auto", cuda=True, bf16_supported=True) == "bf16"
    assert base_model.choose_precision("auto", cuda=True, bf16_supported=False) == "fp32"
    assert base_model.choose_precision("auto", cuda=False, bf16_supported=False) == "fp32"
    assert base_model.choose_precision("fp16", cuda=True, bf16_supported=True) == "fp16"


def test_a_sequence_longer_than_the_models_context_is_refused(tiny_base: Path) -> None:
    spec = make_spec(tiny_base, seq_len=4096)
    config = base_model.load_config(str(tiny_base), None)

    with pytest.raises(ModelError, match=r"above the context .*\(512 tokens\); set seq_len to 512"):
        base_model.check_fit(config, spec)


def test_an_architecture_without_defaults_needs_target_modules(tiny_base: Path) -> None:
    config = base_model.load_config(str(tiny_base), None)
    config.model_type = "mamba"

    with pytest.raises(ModelError, match=r"no LoRA defaults .* set lora_target_modules"):
        base_model.check_fit(config, make_spec(tiny_base))
    assert base_model.check_fit(config, make_spec(tiny_base, lora_target_modules=["x"])) == ["x"]


def test_an_unknown_base_model_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        base_model.fetch_base(str(tmp_path / "missing"), tmp_path)
    with pytest.raises(ModelError, match=r"without config\.json"):
        base_model.fetch_base(str(tmp_path), tmp_path)


def test_bitsandbytes_runs_4bit_nf4_on_this_cpu() -> None:
    assert base_model.bnb_4bit_problem(torch.device("cpu")) is None


def test_qlora_without_a_capable_device_fails_unless_fallback_is_allowed() -> None:
    assert qlora_or_fallback(None, allow_fallback=False) == "qlora"
    assert qlora_or_fallback("no GPU", allow_fallback=True) == "lora"
    with pytest.raises(ModelError, match="use method 'lora', or set allow_qlora_fallback"):
        qlora_or_fallback("no GPU", allow_fallback=False)
