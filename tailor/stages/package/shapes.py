"""Shapes of a base model's weights, read from its safetensors headers (no weights loaded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tailor.stages.package.errors import InvalidAdapterError
from tailor.stages.package.headers import read_header

Shapes = dict[str, tuple[int, ...]]
OUTPUT_HEAD = "lm_head.weight"


def read_model_config(base_dir: Path) -> dict[str, Any]:
    """The base model's `config.json` as a dict."""
    path = base_dir / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InvalidAdapterError(f"base model at {base_dir} has no config.json") from exc
    except json.JSONDecodeError as exc:
        raise InvalidAdapterError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise InvalidAdapterError(f"{path} is not a JSON object")
    return config


def base_weight_shapes(base_dir: Path) -> Shapes:
    """Every parameter's shape: from the safetensors headers, else a meta-device model."""
    files = _safetensors_files(base_dir)
    if not files:
        return _meta_shapes(base_dir)
    shapes: Shapes = {}
    for path in files:
        shapes.update({name: info.shape for name, info in read_header(path).items()})
    if read_model_config(base_dir).get("tie_word_embeddings", True) and OUTPUT_HEAD not in shapes:
        # A tied output head is saved once, as the input embedding: the model still has it,
        # and Tailor adapts it on small bases (tailor.stages.train.auto).
        shapes[OUTPUT_HEAD] = _meta_shapes(base_dir).get(OUTPUT_HEAD) or ()
        shapes = {k: v for k, v in shapes.items() if v}
    return shapes


def _safetensors_files(base_dir: Path) -> list[Path]:
    index = base_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        return [base_dir / name for name in sorted(set(weight_map.values()))]
    single = base_dir / "model.safetensors"
    return [single] if single.is_file() else []


def _meta_shapes(base_dir: Path) -> Shapes:
    """Shapes from the config alone: the model is built on the meta device, nothing allocated."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def find_module_weight(shapes: Shapes, module: str) -> tuple[str, tuple[int, ...]] | None:
    """The base weight a LoRA module path names, tolerating a different leading prefix.

    PEFT names `transformer.h.0.attn.c_attn`; a checkpoint of the bare backbone names
    `h.0.attn.c_attn`. An exact match wins, then the one weight whose name ends the same way.
    """
    exact = f"{module}.weight"
    if exact in shapes:
        return exact, shapes[exact]
    parts = module.split(".")
    for start in range(1, len(parts)):
        candidate = ".".join(parts[start:]) + ".weight"
        if candidate in shapes:
            return candidate, shapes[candidate]
    ends = [name for name in shapes if name.endswith(f".{exact}")]
    if len(ends) == 1:
        return ends[0], shapes[ends[0]]
    return None
