"""Load a base model with LoRA adapters attached, in float32 on the CPU (exact arithmetic)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, PreTrainedModel


def load_base(base_dir: Path) -> PreTrainedModel:
    """The base model from a local directory, float32, in eval mode."""
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model.eval()
    return model


def load_with_adapters(base_dir: Path, adapters: Mapping[str, Path]) -> PeftModel:
    """The base with each adapter loaded under its key (keys must be valid module names)."""
    names = list(adapters)
    if not names:
        raise ValueError("load_with_adapters needs at least one adapter")
    model = PeftModel.from_pretrained(
        load_base(base_dir), adapters[names[0]], adapter_name=names[0]
    )
    for name in names[1:]:
        model.load_adapter(adapters[name], adapter_name=name)
    model.eval()
    return model
