"""Base models: where they come from, whether they fit the spec, how they are loaded."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tailor.stages.train.errors import ModelError
from tailor.stages.train.spec import TrainSpec, default_lora_targets, known_architectures
from tailor.storage import ObjectStore, open_store

Precision = str  # "fp32" | "bf16" | "fp16"


def fetch_base(
    base_model: str,
    cache_dir: Path,
    open_url: Callable[[str], ObjectStore] = open_store,
) -> str:
    """A local directory or hub id that from_pretrained can load; s3:// prefixes are downloaded."""
    if base_model.startswith("s3://"):
        target = cache_dir / "base" / hashlib.sha256(base_model.encode()).hexdigest()[:16]
        if (target / "config.json").is_file():
            return str(target)
        store = open_url(base_model.rstrip("/") + "/")
        keys = store.list("")
        if not any(k.endswith("config.json") for k in keys):
            raise ModelError(f"no transformers checkpoint (config.json) under {base_model}")
        for key in keys:
            store.download_file(key, target / key)
        return str(target)
    path = Path(base_model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{base_model} is a directory without config.json: not a checkpoint")
        return str(path.resolve())
    if base_model.startswith(("/", ".", "~")):
        raise ModelError(f"base model directory {base_model} does not exist")
    return base_model  # a hub id: from_pretrained resolves it (and its revision)


def load_config(source: str, revision: str | None) -> Any:
    """The model's transformers config; a clear error for an unknown model."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, revision=revision)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(
            f"cannot load base model {source!r}"
            + (f" at revision {revision!r}" if revision else "")
            + f": {str(exc).splitlines()[0]}"
        ) from exc


def context_length(config: Any) -> int | None:
    """The longest sequence the model's position scheme supports, if it says."""
    for name in ("max_position_embeddings", "n_positions", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_fit(config: Any, spec: TrainSpec) -> list[str] | None:
    """Check the spec against the model; returns the LoRA targets (None for full)."""
    limit = context_length(config)
    if limit is not None and spec.seq_len > limit:
        raise ModelError(
            f"seq_len {spec.seq_len} is above the context of {spec.base_model} ({limit} tokens); "
            f"set seq_len to {limit} or less"
        )
    if spec.method == "full":
        return None
    targets = spec.lora_target_modules or default_lora_targets(config.model_type)
    if targets is None:
        raise ModelError(
            f"architecture {config.model_type!r} has no LoRA defaults (known: "
            f"{', '.join(known_architectures())}); set lora_target_modules in the spec"
        )
    return targets


def choose_attention(
    requested: str, flash_installed: bool, capability: tuple[int, int] | None
) -> str:
    """The attention kernel: flash_attention_2 only if installed on an sm80+ GPU, else sdpa."""
    flash_ok = flash_installed and capability is not None and capability >= (8, 0)
    if requested == "flash_attention_2" and not flash_ok:
        raise ModelError(
            "attention 'flash_attention_2' needs the flash-attn package and a GPU with compute "
            "capability 8.0+ (A100, H100); use attention 'auto' or 'sdpa'"
        )
    if requested == "auto":
        return "flash_attention_2" if flash_ok else "sdpa"
    return requested


def detect_attention(requested: str) -> str:
    """choose_attention for this machine."""
    cap = torch.cuda.get_device_capability() if torch.cuda.is_available() else None
    return choose_attention(requested, importlib.util.find_spec("flash_attn") is not None, cap)


def choose_precision(requested: str, cuda: bool, bf16_supported: bool) -> Precision:
    """auto: bf16 on a bf16-capable GPU, fp32 otherwise (CPU training stays exact)."""
    if requested != "auto":
        return requested
    return "bf16" if cuda and bf16_supported else "fp32"


def detect_precision(requested: str) -> Precision:
    """choose_precision for this machine."""
    cuda = torch.cuda.is_available()
    return choose_precision(requested, cuda, cuda and torch.cuda.is_bf16_supported())


def torch_dtype(precision: Precision) -> torch.dtype:
    """The torch dtype of a precision name."""
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def training_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return (
        torch.device("cuda", torch.cuda.current_device())
        if torch.cuda.is_available()
        else torch.device("cpu")
    )


def load_tokenizer(source: str, revision: str | None) -> Any:
    """The model's own tokenizer (fast)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of {source!r}: {exc}") from exc


def load_causal_lm(
    source: str,
    revision: str | None,
    *,
    dtype: torch.dtype,
    attention: str,
    quantization: Any = None,
    device: torch.device | None = None,
) -> Any:
    """The base model for causal LM training, on one device."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "revision": revision,
        "dtype": dtype,
        "attn_implementation": attention,
    }
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    if device is not None:
        kwargs["device_map"] = {"": device}
    try:
        return AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load {source!r} as a causal LM: {str(exc).splitlines()[0]}"
        ) from exc


def bnb_4bit_problem(device: torch.device) -> str | None:
    """Why bitsandbytes cannot run 4-bit NF4 on this device, or None when it can.

    A real round trip, not a version check: quantize and dequantize a fixed matrix there.
    """
    sample = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    try:
        import bitsandbytes.functional as bnbf

        on_device = sample.to(device=device, dtype=torch.bfloat16)
        packed, state = bnbf.quantize_4bit(on_device, quant_type="nf4", compress_statistics=True)
        restored = bnbf.dequantize_4bit(packed, state).float().cpu()
    except Exception as exc:  # any failure means: not usable here; report it
        return f"bitsandbytes 4-bit does not run on {device.type}: {type(exc).__name__}: {exc}"
    # NF4 keeps about 10% mean relative error on normal weights; far more means broken kernels.
    error = float((restored - sample).abs().mean() / sample.abs().mean())
    if error > 0.25:
        return f"bitsandbytes 4-bit on {device.type} returned wrong values ({error:.0%} error)"
    return None
