"""Expected GPU-hours of a fine-tune before it starts (pure).

Two ways, the first that applies:

1. **Measured**: the median training throughput (tokens per GPU-second) of earlier
   fine-tunes of the same base, method and GPU type on this platform.
2. **FLOPs model**: a transformer step costs about 6·N FLOPs per token (forward 2·N, backward
   4·N; Kaplan et al. 2020), run at a fraction (the MFU) of the GPU's dense BF16 peak:
   GPU-seconds = 6 · N · tokens / (peak x MFU). LoRA and QLoRA skip the weight gradients
   but still back-propagate through every layer, so they keep the 6·N and are charged a
   lower MFU instead (QLoRA dequantises every weight on each use).

Tokens come from the spec and the dataset as the run will choose them
(`tailor.stages.train.auto.choose`): steps x seq_len x micro_batch x grad_accum x processes.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

FLOPS_PER_PARAM_TOKEN = 6.0
# Dense BF16 tensor-core peak per GPU, FLOP/s (vendor data sheets, without sparsity).
PEAK_FLOPS = {
    "nvidia-a100-80gb": 312e12,
    "nvidia-a100-40gb": 312e12,
    "nvidia-h100-80gb": 989e12,
    "nvidia-h200": 989e12,
    "nvidia-l40s": 362e12,
    "nvidia-l4": 121e12,
    "nvidia-a10g": 125e12,
    "nvidia-t4": 65e12,
}
# A type missing from the table is assumed to be an A100.
DEFAULT_PEAK_FLOPS = 312e12
# Model FLOPs utilisation by method: what fine-tuning code-model sizes typically reaches.
MFU = {"full": 0.40, "lora": 0.30, "qlora": 0.20}
# How many earlier runs the measured throughput takes the median of.
MEASURED_RUNS = 10


@dataclass(frozen=True)
class Estimate:
    """Expected GPU-hours and price of a fine-tune, and how they were worked out."""

    gpu_type: str | None
    gpus: int
    tokens: int
    gpu_hours: float | None  # None: no basis (an unsized base and no earlier run)
    price: float | None  # None: no price for the GPU type (or no GPU-hours)
    basis: str  # "measured", "flops-model", "cpu" or "unknown"
    detail: str


def peak_flops(gpu_type: str) -> float:
    """The GPU type's dense BF16 peak (FLOP/s)."""
    return PEAK_FLOPS.get(gpu_type, DEFAULT_PEAK_FLOPS)


def flops_gpu_seconds(params: int, tokens: int, method: str, gpu_type: str) -> float:
    """GPU-seconds by the FLOPs model: 6·N·tokens / (peak x MFU)."""
    return FLOPS_PER_PARAM_TOKEN * params * tokens / (peak_flops(gpu_type) * MFU[method])


def measured_throughput(runs: Sequence[tuple[int, float]]) -> float | None:
    """Median tokens per GPU-second of earlier runs ((tokens, GPU-seconds) pairs)."""
    rates = [tokens / seconds for tokens, seconds in runs if tokens > 0 and seconds > 0]
    return statistics.median(rates[:MEASURED_RUNS]) if rates else None


def estimate(
    *,
    tokens: int,
    method: str,
    gpu_type: str | None,
    gpus: int,
    params: int | None,
    throughput: float | None,
    price_per_gpu_hour: float | None,
) -> Estimate:
    """The estimate from whichever basis applies (see the module docstring)."""
    if gpu_type is None or gpus == 0:
        return Estimate(None, 0, tokens, 0.0, 0.0, "cpu", "runs on the CPU: no GPU time")
    if throughput is not None:
        seconds = tokens / throughput
        basis = "measured"
        detail = (
            f"{tokens:,} tokens at {throughput:,.0f} tokens per GPU-second, the median of "
            f"earlier fine-tunes of this base with {method} on {gpu_type}"
        )
    elif params is not None:
        seconds = flops_gpu_seconds(params, tokens, method, gpu_type)
        basis = "flops-model"
        detail = (
            f"6 x {params:,} parameters x {tokens:,} tokens / ({peak_flops(gpu_type):.3g} "
            f"FLOP/s peak of {gpu_type} x MFU {MFU[method]:.2f} for {method})"
        )
    else:
        return Estimate(
            gpu_type, gpus, tokens, None, None, "unknown",
            "the base's parameter count is unknown and no earlier run measured its throughput",
        )  # fmt: skip
    hours = seconds / 3600.0
    price = None if price_per_gpu_hour is None else hours * price_per_gpu_hour
    return Estimate(gpu_type, gpus, tokens, hours, price, basis, detail)


_SIZE = re.compile(r"(?<![0-9.])([0-9]+(?:\.[0-9]+)?)\s*([bBmM])(?![a-zA-Z])")


def params_from_name(name: str) -> int | None:
    """A parameter count a model's name states (`starcoderbase-1b`, `Qwen2.5-Coder-7B`)."""
    found = _SIZE.findall(name)
    if not found:
        return None
    number, unit = found[-1]
    return int(float(number) * (1e9 if unit in "bB" else 1e6))


def params_from_config(config: dict[str, object]) -> int | None:
    """A decoder's parameter count from its transformers config: 12·L·d² + V·d.

    The usual approximation (attention 4·d², MLP 8·d² per layer, embeddings V·d); good to a
    few percent for GPT-style code models, which is all an estimate needs.
    """

    def number(*keys: str) -> int | None:
        for key in keys:
            value = config.get(key)
            if isinstance(value, int) and value > 0:
                return value
        return None

    layers = number("n_layer", "num_hidden_layers")
    width = number("n_embd", "hidden_size")
    vocab = number("vocab_size")
    if layers is None or width is None or vocab is None:
        return None
    return 12 * layers * width * width + vocab * width
