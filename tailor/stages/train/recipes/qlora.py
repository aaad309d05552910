"""Recipe: QLoRA — LoRA on a 4-bit NF4 base (bitsandbytes, double quantisation, bf16 compute).

Only the setup differs from LoRA; the loop, checkpoints and saving are `lora.train`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from tailor.stages.train import base_model
from tailor.stages.train.errors import ModelError
from tailor.stages.train.loop import Hooks
from tailor.stages.train.recipes import lora
from tailor.stages.train.spec import TrainResult, TrainSpec
from tailor.storage import ObjectStore


def run(spec: TrainSpec, store: ObjectStore, hooks: Hooks) -> TrainResult:
    """The whole QLoRA recipe, falling back to LoRA only where the spec allows it."""
    device = base_model.training_device()
    problem = base_model.bnb_4bit_problem(device)
    if qlora_or_fallback(problem, spec.allow_qlora_fallback) == "lora":
        hooks.on_log(f"QLoRA is not available ({problem}); training LoRA instead (spec allows it)")
        return lora.run(spec, store, hooks, fallback_reason=problem)
    return lora.train(spec, store, hooks, setup(spec, hooks, device))


def qlora_or_fallback(problem: str | None, allow_fallback: bool) -> str:
    """'qlora' when bitsandbytes works here, 'lora' when it does not and fallback is allowed."""
    if problem is None:
        return "qlora"
    if allow_fallback:
        return "lora"
    raise ModelError(
        f"QLoRA needs a bitsandbytes 4-bit capable device: {problem}. Run on a GPU node, "
        "use method 'lora', or set allow_qlora_fallback to train LoRA when QLoRA cannot run"
    )


def compute_dtype(precision: str) -> torch.dtype:
    """bf16 compute unless the spec asks for fp16 (pre-Ampere GPUs) or fp32."""
    return {"fp16": torch.float16, "fp32": torch.float32}.get(precision, torch.bfloat16)


def quantization(precision: str) -> Any:
    """The bitsandbytes 4-bit NF4 config with double quantisation."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype(precision),
    )


def setup(spec: TrainSpec, hooks: Hooks, device: torch.device) -> lora.Setup:
    """Load the base quantised to 4 bits, prepare it for k-bit training, add LoRA."""
    from peft import prepare_model_for_kbit_training

    source = base_model.fetch_base(spec.base_location(), hooks.work_dir / "cache")
    targets = base_model.check_fit(base_model.load_config(source, spec.base_revision), spec)
    attention = base_model.detect_attention(spec.attention)
    dtype = compute_dtype(spec.precision)
    torch.manual_seed(spec.seed)
    base = base_model.load_causal_lm(
        source,
        spec.base_revision,
        dtype=dtype,
        attention=attention,
        quantization=quantization(spec.precision),
        device=device,
    )
    base = prepare_model_for_kbit_training(
        base,
        use_gradient_checkpointing=spec.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    model = lora.add_lora(
        base, spec.model_copy(update={"gradient_checkpointing": False}), targets or []
    )
    keep_training_layout(model)
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
    hooks.on_log(
        f"QLoRA on {spec.base_model}: nf4 weights, {precision} compute, attention {attention}"
    )
    return lora.Setup(
        model=model,
        tokenizer=base_model.load_tokenizer(source, spec.base_revision),
        device=device,
        precision=precision,
        attention=attention,
        method="qlora",
        amp=contextlib.nullcontext,  # bitsandbytes computes in the configured dtype
    )


def keep_training_layout(model: Any) -> None:
    """Keep every 4-bit weight of the model in the layout training reads.

    On a CPU with AVX512-BF16, bitsandbytes repacks a Linear4bit's weight into an
    inference-only layout the first time the layer runs in eval mode without grad, and leaves
    it so: the next training step then goes through the inference kernel and fails ("a view of
    a leaf Variable that requires grad is being used in an in-place operation"). Repacking back
    after each evaluation would be lossy (the block scales return re-quantised from bf16), so
    the repack is turned off: evaluation dequantises exactly as training does, on any CPU.
    """
    from bitsandbytes.nn import Linear4bit

    for layer in model.modules():
        if isinstance(layer, Linear4bit):
            layer.support_avx512bf16_for_cpu = False
