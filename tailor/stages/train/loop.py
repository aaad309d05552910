"""Components of a training loop that every recipe shares: small functions, no framework."""

from __future__ import annotations

import contextlib
import math
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tailor.stages.train.errors import DivergedError, OutOfMemory
from tailor.stages.train.spec import TrainSpec

Metrics = dict[str, float | int | None]


def _ignore(_: Any) -> None:
    return None


def _never() -> bool:
    return False


def _no_progress(fraction: float, message: str) -> None:
    return None


@dataclass
class Hooks:
    """How a run talks to whoever started it: metrics, log lines, the stop flag."""

    job_id: str
    work_dir: Path
    on_metrics: Callable[[Metrics], None] = _ignore
    on_log: Callable[[str], None] = _ignore
    should_stop: Callable[[], bool] = _never
    on_progress: Callable[[float, str], None] = _no_progress


def total_steps(spec: TrainSpec, train_tokens: int | None) -> int:
    """Optimizer steps of the run: max_steps, or epochs over the counted train tokens."""
    if spec.max_steps is not None:
        return spec.max_steps
    assert train_tokens is not None, "epochs need the train token count"
    per_step = spec.seq_len * spec.micro_batch * spec.grad_accum
    return max(1, math.floor(spec.number("epochs") * train_tokens / per_step))


def make_optimizer(model: Any, spec: TrainSpec) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(
        params, lr=spec.number("learning_rate"), weight_decay=spec.weight_decay
    )


def make_scheduler(optimizer: torch.optim.Optimizer, spec: TrainSpec, steps: int) -> Any:
    """Linear warmup, then the spec's decay."""
    from transformers import get_scheduler

    name = "constant_with_warmup" if spec.lr_schedule == "constant" else spec.lr_schedule
    return get_scheduler(
        name, optimizer, num_warmup_steps=spec.warmup_steps, num_training_steps=steps
    )


def to_batch(rows: Sequence[list[int]], device: torch.device) -> torch.Tensor:
    """A (rows, seq_len) tensor of token ids on the device."""
    return torch.tensor(rows, dtype=torch.long, device=device)


def micro_batches(rows: Iterator[list[int]], size: int) -> Iterator[list[list[int]]]:
    """Groups of `size` rows; stops when the rows run out."""
    while True:
        group = [row for _, row in zip(range(size), rows, strict=False)]
        if len(group) < size:
            return
        yield group


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[Any]:
    """Mixed-precision autocast for bf16/fp16; nothing for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def train_step(
    model: Any,
    batches: Sequence[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    max_grad_norm: float,
    amp: Callable[[], contextlib.AbstractContextManager[Any]],
) -> float:
    """One optimizer step over accumulated micro-batches; returns their mean loss."""
    total = 0.0
    for batch in batches:
        with amp():
            loss = model(input_ids=batch, labels=batch).loss / len(batches)
        loss.backward()
        total += loss.item()
    params = [p for p in model.parameters() if p.requires_grad]
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total


# A loss this many times the run's first is a run that diverged, not a noisy batch.
DIVERGED_FACTOR = 3.0


def check_loss(loss: float, step: int, first_loss: float | None, lr: float) -> None:
    """Stop a run whose loss became NaN/infinite or blew up, saying what to change."""
    advice = f"lower the learning rate (it was {lr:.3g} at that step)"
    if not math.isfinite(loss):
        word = "NaN" if math.isnan(loss) else "infinite"
        raise DivergedError(f"loss became {word} at step {step}; {advice}")
    if first_loss is not None and first_loss > 0 and loss > DIVERGED_FACTOR * first_loss:
        raise DivergedError(
            f"loss diverged to {loss:.4g} at step {step}, over {DIVERGED_FACTOR:g}x its first "
            f"value {first_loss:.4g}; {advice}"
        )


@torch.no_grad()
def evaluate(
    model: Any,
    rows: Sequence[list[int]],
    micro_batch: int,
    device: torch.device,
    amp: Callable[[], contextlib.AbstractContextManager[Any]],
) -> float | None:
    """Mean held-out loss, or None without held-out rows."""
    if not rows:
        return None
    was_training = model.training
    model.eval()
    losses = []
    for start in range(0, len(rows), micro_batch):
        batch = to_batch(rows[start : start + micro_batch], device)
        with amp():
            losses.append(model(input_ids=batch, labels=batch).loss.item())
    model.train(was_training)
    return sum(losses) / len(losses)


def count_params(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters; 4-bit weights count by their logical size."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel() * 2 if p.dtype == torch.uint8 else p.numel()  # two 4-bit values per byte
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total


def reset_peak_memory(device: torch.device) -> None:
    """Start a fresh peak measurement on the GPU (the CPU's is process-lifetime)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak GPU memory allocated, or the process's peak resident set on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB


def is_oom(exc: BaseException) -> bool:
    """Whether an exception is an out-of-memory failure (CUDA's, or the CPU allocator's)."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def oom_advice(spec: TrainSpec, step: int, peak: int, capacity: int | None) -> OutOfMemory:
    """The out-of-memory failure, with what was measured and what to change."""
    gib = 1024**3
    where = f" of {capacity / gib:.1f} GiB" if capacity else ""
    tips = []
    if spec.micro_batch > 1:
        tips.append(f"micro_batch {spec.micro_batch // 2} with grad_accum {spec.grad_accum * 2}")
    if not spec.gradient_checkpointing:
        tips.append("gradient_checkpointing true")
    if spec.method != "qlora":
        tips.append("method qlora")
    tips.append(f"seq_len {max(16, spec.seq_len // 2)}")
    return OutOfMemory(
        f"out of memory at step {step}: peak {peak / gib:.2f} GiB{where} measured; "
        f"try {', or '.join(tips)}"
    )


def device_capacity(device: torch.device) -> int | None:
    """Total memory of the GPU, None on the CPU."""
    return (
        int(torch.cuda.get_device_properties(device).total_memory)
        if device.type == "cuda"
        else None
    )


@dataclass
class Throughput:
    """Tokens per second over the run, excluding evaluation and checkpoint time."""

    tokens: int = 0
    seconds: float = 0.0
    _start: float = field(default=0.0, repr=False)

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self, tokens: int) -> float:
        """Record a timed span of `tokens`; returns the span's tokens/s."""
        span = time.perf_counter() - self._start
        self.tokens += tokens
        self.seconds += span
        return tokens / span if span > 0 else 0.0

    @property
    def mean(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0
