"""Recipe: LoRA on an fp32/bf16 base in one process: setup → train → save → clean up.

QLoRA (recipes/qlora.py) differs only in how the base model is loaded; it reuses `train`.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from tailor.stages.train import base_model, checkpoints, data, loop
from tailor.stages.train.artifacts import ADAPTER_FILES, store_artifact
from tailor.stages.train.errors import ModelError, TrainingCancelled
from tailor.stages.train.fim import tokenizer_fim_ids
from tailor.stages.train.loop import Hooks, Metrics
from tailor.stages.train.packing import PackingStats
from tailor.stages.train.spec import TrainResult, TrainSpec
from tailor.storage import ObjectStore

Amp = Callable[[], contextlib.AbstractContextManager[Any]]


@dataclass
class Setup:
    """A model ready to train and what was decided while loading it."""

    model: Any
    tokenizer: Any
    device: torch.device
    precision: str
    attention: str
    method: str
    amp: Amp
    fallback_reason: str | None = None


@dataclass
class RunState:
    """What a checkpoint carries besides weights: progress and the history so far."""

    step: int = 0
    history: list[Metrics] = field(default_factory=list)
    eval_before: float | None = None
    resumed_from: int | None = None


def run(
    spec: TrainSpec, store: ObjectStore, hooks: Hooks, fallback_reason: str | None = None
) -> TrainResult:
    """The whole LoRA recipe."""
    return train(spec, store, hooks, setup(spec, hooks, fallback_reason))


# --- setup -----------------------------------------------------------------------------


def setup(spec: TrainSpec, hooks: Hooks, fallback_reason: str | None = None) -> Setup:
    """Load the base in the chosen precision and attention kernel, and wrap it with LoRA."""
    source = base_model.fetch_base(spec.base_location(), hooks.work_dir / "cache")
    targets = base_model.check_fit(base_model.load_config(source, spec.base_revision), spec)
    device = base_model.training_device()
    precision = base_model.detect_precision(spec.precision)
    attention = base_model.detect_attention(spec.attention)
    dtype = base_model.torch_dtype(precision)
    torch.manual_seed(spec.seed)
    base = base_model.load_causal_lm(
        source, spec.base_revision, dtype=dtype, attention=attention, device=device
    )
    model = add_lora(base, spec, targets or [])
    hooks.on_log(f"LoRA on {spec.base_model}: {precision}, attention {attention}, {device.type}")
    return Setup(
        model=model,
        tokenizer=base_model.load_tokenizer(source, spec.base_revision),
        device=device,
        precision=precision,
        attention=attention,
        method="lora",
        amp=lambda: loop.autocast(device, dtype),
        fallback_reason=fallback_reason,
    )


def add_lora(model: Any, spec: TrainSpec, targets: list[str]) -> Any:
    """Wrap a base model with LoRA adapters on the target modules."""
    from peft import LoraConfig, get_peft_model

    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    config = LoraConfig(
        r=int(spec.number("lora_r")),
        lora_alpha=int(spec.number("lora_alpha")),
        lora_dropout=spec.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ModelError(f"LoRA targets {targets} do not fit the model: {exc}") from exc


# --- train -----------------------------------------------------------------------------


def train(spec: TrainSpec, store: ObjectStore, hooks: Hooks, s: Setup) -> TrainResult:
    """Train the prepared model on the dataset, store the adapter, clean up."""
    started = time.perf_counter()
    scratch = hooks.work_dir / "shards"
    try:
        manifest = data.read_manifest(store, spec.team, spec.dataset_id)
        fim_ids = tokenizer_fim_ids(s.tokenizer, spec.fim_tokens) if spec.fim_rate > 0 else None
        pipeline = data.token_pipeline(
            s.tokenizer, fim_ids, spec.fim_rate, spec.spm_rate, spec.repo_rate
        )
        holdout = data.holdout_rows(
            store, manifest, pipeline, spec.seq_len, spec.eval_batches * spec.micro_batch, scratch
        )
        if not holdout:
            hooks.on_log("the dataset has no held-out rows: eval loss is not measured")
        tokens = (
            None if spec.max_steps else data.count_train_tokens(store, manifest, pipeline, scratch)
        )
        steps = loop.total_steps(spec, tokens)
        optimizer = loop.make_optimizer(s.model, spec)
        scheduler = loop.make_scheduler(optimizer, spec, steps)
        prefix = spec.checkpoint_prefix(hooks.job_id)
        state = resume(store, prefix, s.model, optimizer, scheduler, hooks)

        def evaluate() -> float | None:
            return loop.evaluate(s.model, holdout, spec.micro_batch, s.device, s.amp)

        if state.resumed_from is None:
            state.eval_before = evaluate()
            hooks.on_log(f"eval loss before training: {state.eval_before}")
        stats = PackingStats()
        rows = data.training_stream(
            store, manifest, pipeline, spec.seq_len, spec.seed, scratch, stats
        )
        groups = loop.micro_batches(rows, spec.micro_batch)
        for _ in range(state.step * spec.grad_accum):  # replay the data a resumed run consumed
            next(groups)
        trainable, total = loop.count_params(s.model)
        meter = loop.Throughput()
        loop.reset_peak_memory(s.device)
        s.model.train()
        for step in range(state.step + 1, steps + 1):
            if hooks.should_stop():
                cancel(hooks, step - 1)
            metrics = train_one_step(spec, s, optimizer, scheduler, groups, step, meter)
            first = state.history[0]["loss"] if state.history else None
            # Before anything records it: a NaN must end the run, not reach the job's rows.
            loop.check_loss(float(metrics["loss"] or 0.0), step, first, float(metrics["lr"] or 0.0))
            metrics["trainable_params"] = trainable
            if step == steps or (spec.eval_interval and step % spec.eval_interval == 0):
                metrics["eval_loss"] = evaluate()
            state.history.append(metrics)
            state.step = step
            hooks.on_metrics(metrics)
            hooks.on_progress(step / steps, f"step {step} of {steps}, loss {metrics['loss']:.4f}")
            if spec.checkpoint_interval and step % spec.checkpoint_interval == 0 and step < steps:
                save_checkpoint(store, prefix, s, optimizer, scheduler, state, hooks)
        last = state.history[-1]
        result = TrainResult(
            adapter_prefix=spec.adapter_prefix(),
            method=s.method,  # type: ignore[arg-type]
            fallback_reason=s.fallback_reason,
            attention=s.attention,
            precision=s.precision,
            device=s.device.type,
            steps=state.step,
            resumed_from_step=state.resumed_from,
            final_loss=float(last["loss"] or 0.0),
            eval_loss_before=state.eval_before,
            eval_loss_after=last.get("eval_loss"),
            trainable_params=trainable,
            total_params=total,
            tokens_seen=meter.tokens,
            tokens_per_s=meter.mean,
            peak_memory_bytes=loop.peak_memory_bytes(s.device),
            padding_fraction=stats.padding_fraction,
            duration_s=time.perf_counter() - started,
            metrics=state.history,
        )
        save_adapter(store, spec, s, result, hooks, manifest.stats)
        store.delete_prefix(prefix)  # the adapter is stored: checkpoints have served
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def train_one_step(
    spec: TrainSpec,
    s: Setup,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    groups: Iterator[list[list[int]]],
    step: int,
    meter: loop.Throughput,
) -> Metrics:
    """One optimizer step; out-of-memory becomes a failure with advice."""
    batches = [loop.to_batch(next(groups), s.device) for _ in range(spec.grad_accum)]
    lr = scheduler.get_last_lr()[0]
    meter.start()
    try:
        loss = loop.train_step(s.model, batches, optimizer, scheduler, spec.max_grad_norm, s.amp)
    except Exception as exc:
        if loop.is_oom(exc):
            peak = loop.peak_memory_bytes(s.device)
            raise loop.oom_advice(spec, step, peak, loop.device_capacity(s.device)) from exc
        raise
    tokens_per_s = meter.stop(sum(b.numel() for b in batches))
    peak = loop.peak_memory_bytes(s.device)
    return {
        "step": step,
        "loss": loss,
        "lr": lr,
        "tokens_per_s": tokens_per_s,
        "peak_memory_bytes": peak,
    }


# --- checkpoints -----------------------------------------------------------------------


def save_checkpoint(
    store: ObjectStore,
    prefix: str,
    s: Setup,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: RunState,
    hooks: Hooks,
) -> None:
    """Adapter weights, optimizer, schedule and RNG to `<prefix>step-N/`; older ones go."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    local = hooks.work_dir / f"checkpoint-{state.step}"
    local.mkdir(parents=True, exist_ok=True)
    weights = {
        k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(s.model).items()
    }
    save_file(weights, local / "adapter_model.safetensors")
    torch.save(optimizer.state_dict(), local / "optimizer.pt")
    torch.save(scheduler.state_dict(), local / "scheduler.pt")
    torch.save(rng_state(), local / "rng.pt")
    files = {p.name: p for p in local.iterdir()}
    run_state = {"history": state.history, "eval_before": state.eval_before}
    checkpoints.save_checkpoint(store, prefix, state.step, files, run_state)
    checkpoints.prune_checkpoints(store, prefix, keep=state.step)
    shutil.rmtree(local, ignore_errors=True)
    hooks.on_log(f"checkpoint at step {state.step}")


def resume(
    store: ObjectStore,
    prefix: str,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    hooks: Hooks,
) -> RunState:
    """Restore the newest checkpoint of this job, if any."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    step = checkpoints.latest_step(store, prefix)
    if step is None:
        return RunState()
    local = hooks.work_dir / f"resume-{step}"
    saved = checkpoints.load_checkpoint(store, prefix, step, local)
    set_peft_model_state_dict(model, load_file(local / "adapter_model.safetensors"))
    optimizer.load_state_dict(torch.load(local / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(local / "scheduler.pt", weights_only=True))
    restore_rng(torch.load(local / "rng.pt", weights_only=True))
    shutil.rmtree(local, ignore_errors=True)
    hooks.on_log(f"resumed from checkpoint at step {step}")
    return RunState(step, list(saved["history"]), saved.get("eval_before"), resumed_from=step)


def rng_state() -> dict[str, Any]:
    """The random state dropout draws from."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what rng_state took."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# --- save and clean up -----------------------------------------------------------------


def save_adapter(
    store: ObjectStore,
    spec: TrainSpec,
    s: Setup,
    result: TrainResult,
    hooks: Hooks,
    dataset_stats: dict[str, Any],
) -> None:
    """adapter_model.safetensors + adapter_config.json + tailor.json under the adapter prefix."""
    local = hooks.work_dir / "adapter"
    shutil.rmtree(local, ignore_errors=True)
    # The adapter names the base by its catalog name, not the local cache it was loaded from.
    config = s.model.peft_config["default"]
    config.base_model_name_or_path = spec.base_model
    config.revision = spec.base_revision
    # Embeddings are never adapted or resized here; "auto" would look the catalog name up
    # on the hub to compare vocabularies.
    s.model.save_pretrained(local, safe_serialization=True, save_embedding_layers=False)
    missing = [name for name in ADAPTER_FILES if not (local / name).is_file()]
    if missing:
        raise ModelError(f"peft did not write {missing} for the adapter")
    store_artifact(store, spec, result, hooks.job_id, dataset_stats, local)
    shutil.rmtree(local, ignore_errors=True)
    hooks.on_log(f"adapter stored at {spec.adapter_prefix()}")


def cancel(hooks: Hooks, step: int) -> None:
    """Stop without storing an adapter.

    Checkpoints stay: a stop is also how a preempted pod leaves, and its retry resumes from
    them; whoever cancels the job for good deletes them (the worker, the operator).
    """
    hooks.on_log(f"stopped on request after step {step}; no adapter was stored")
    raise TrainingCancelled(f"stopped on request after step {step}")
