"""Recipe: full fine-tuning sharded with FSDP2 through accelerate, one process per device.

`run_rank` is what each rank runs: setup → resume → train → save → clean up. In a cluster
the operator starts torchrun around `tailor train run`, so every rank lands in `run_rank`;
`launch` does the same on this machine (torchrun around the same command)
and relays rank 0's JSON-line events to the caller's hooks.

Checkpoints are sharded with torch.distributed.checkpoint (DCP): every `checkpoint_interval`
steps each rank writes its own shards of the model and optimizer to a local staging folder
and uploads them to `<checkpoint prefix>step-N/`; once every rank has uploaded, rank 0
commits the checkpoint by writing its `state.json` (step, data position, history), so a
kill mid-upload leaves a folder that resume ignores. On start every rank downloads the newest
committed checkpoint and loads it. DCP reshards on load, so a checkpoint resumes on another
number of processes too (same weights, optimizer, schedule and data position; the global
batch then follows the new world size, so the loss curve is the same only on the same one).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import tailor
from tailor.stages.train import base_model, checkpoints, data, loop
from tailor.stages.train.artifacts import store_artifact
from tailor.stages.train.errors import SpecError, TrainError, TrainingCancelled
from tailor.stages.train.fim import tokenizer_fim_ids
from tailor.stages.train.loop import Hooks, Metrics
from tailor.stages.train.packing import PackingStats
from tailor.stages.train.protocol import (
    EVENTS_URL_ENV,
    EXIT_CANCELLED,
    EXIT_SPEC_ERROR,
    Launch,
    Relayed,
    entrypoint_args,
    local_command,
    log_tail,
)
from tailor.stages.train.protocol import (
    launch as launch_entrypoint,
)
from tailor.stages.train.recipes.lora import restore_rng, rng_state
from tailor.stages.train.spec import TrainResult, TrainSpec
from tailor.storage import ObjectStore

# --- setup -----------------------------------------------------------------------------


def fsdp_plugin_kwargs(spec: TrainSpec, block_classes: list[str]) -> dict[str, Any]:
    """accelerate's FSDP plugin (version 2) configuration, from the spec."""
    return {
        "fsdp_version": 2,
        # FSDP2 expresses full_shard / shard_grad_op as resharding after the forward pass.
        "reshard_after_forward": spec.fsdp.sharding_strategy == "full_shard",
        "auto_wrap_policy": "transformer_based_wrap",
        "transformer_cls_names_to_wrap": block_classes,
        "cpu_offload": spec.fsdp.cpu_offload,
        "activation_checkpointing": spec.fsdp.activation_checkpointing
        or spec.gradient_checkpointing,
        "state_dict_type": "SHARDED_STATE_DICT",
        "cpu_ram_efficient_loading": False,
    }


def mixed_precision(precision: str) -> str:
    """accelerate's mixed-precision name for a spec precision."""
    return {"bf16": "bf16", "fp16": "fp16"}.get(precision, "no")


def make_accelerator(spec: TrainSpec, block_classes: list[str], precision: str) -> Any:
    """An Accelerator that shards with FSDP2, on GPUs (nccl) or CPUs (gloo)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin(**fsdp_plugin_kwargs(spec, block_classes))
    accelerator = Accelerator(
        fsdp_plugin=plugin,
        mixed_precision=mixed_precision(precision),
        cpu=not torch.cuda.is_available(),  # accelerate detects gloo multi-process only so
    )
    if accelerator.distributed_type == DistributedType.MULTI_CPU:
        # accelerate enables its FSDP plugin only for GPU-like devices; FSDP2 itself runs on
        # CPU over gloo, so declare the state FSDP and let prepare() apply fully_shard.
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
    return accelerator


def block_classes(model: Any) -> list[str]:
    """The transformer block classes to shard one by one (the model's own no-split list)."""
    names = list(getattr(model, "_no_split_modules", None) or [])
    if not names:
        raise TrainError(f"{type(model).__name__} names no transformer block class to shard")
    return names


# --- one rank --------------------------------------------------------------------------


@dataclass
class RunState:
    """What a checkpoint carries besides the sharded weights: progress and history so far."""

    step: int = 0
    # Micro-batches of the training stream consumed by all ranks together: where to go on.
    consumed: int = 0
    history: list[Metrics] = field(default_factory=list)
    eval_before: float | None = None
    resumed_from: int | None = None


def run_rank(spec: TrainSpec, store: ObjectStore, hooks: Hooks) -> TrainResult:
    """Everything one rank does; rank 0 reports and stores the model."""
    started = time.perf_counter()
    precision = base_model.detect_precision(spec.precision)
    rank = int(os.environ.get("RANK", "0"))
    source = base_model.fetch_base(spec.base_location(), hooks.work_dir / f"cache-rank{rank}")
    config = base_model.load_config(source, spec.base_revision)
    base_model.check_fit(config, spec)
    attention = base_model.detect_attention(spec.attention)
    torch.manual_seed(spec.seed)
    # fp32 master weights; accelerate's mixed precision casts the compute.
    model = base_model.load_causal_lm(
        source, spec.base_revision, dtype=torch.float32, attention=attention
    )
    tied = tied_names(model)
    tokenizer = base_model.load_tokenizer(source, spec.base_revision)
    acc = make_accelerator(spec, block_classes(model), precision)
    if not acc.is_main_process:
        hooks = Hooks(hooks.job_id, hooks.work_dir, should_stop=hooks.should_stop)
    scratch = hooks.work_dir / f"shards-rank{acc.process_index}"
    try:
        manifest = data.read_manifest(store, spec.team, spec.dataset_id)
        fim_ids = tokenizer_fim_ids(tokenizer, spec.fim_tokens) if spec.fim_rate > 0 else None
        pipeline = data.token_pipeline(
            tokenizer, fim_ids, spec.fim_rate, spec.spm_rate, spec.repo_rate
        )
        holdout = data.holdout_rows(
            store, manifest, pipeline, spec.seq_len, spec.eval_batches * spec.micro_batch, scratch
        )
        tokens = (
            None if spec.max_steps else data.count_train_tokens(store, manifest, pipeline, scratch)
        )
        # Each optimizer step consumes grad_accum micro-batches on every rank.
        steps = loop.total_steps(spec, None if tokens is None else tokens // acc.num_processes)
        trainable, total = loop.count_params(model)
        optimizer = loop.make_optimizer(model, spec)
        model, optimizer = acc.prepare(model, optimizer)
        check_sharded(model, acc.num_processes)
        scheduler = loop.make_scheduler(optimizer, spec, steps)
        prefix = spec.checkpoint_prefix(hooks.job_id)
        trained = Trained(acc, model, optimizer, scheduler)
        state = resume(trained, store, prefix, hooks)

        def evaluate() -> float | None:
            return loop.evaluate(model, holdout, spec.micro_batch, acc.device, acc.autocast)

        if state.resumed_from is None:
            state.eval_before = evaluate()
        hooks.on_log(
            f"full FSDP2 (parameters sharded) on {acc.num_processes} processes "
            f"({acc.device.type}), {precision}, attention {attention}; "
            f"eval loss before training: {state.eval_before}"
        )
        stats = PackingStats()
        rows = data.training_stream(
            store, manifest, pipeline, spec.seq_len, spec.seed, scratch, stats
        )
        groups = loop.micro_batches(rows, spec.micro_batch)
        for _ in range(state.consumed):  # replay the data a resumed run consumed
            next(groups)
        meter = loop.Throughput()
        model.train()
        for step in range(state.step + 1, steps + 1):
            if any_rank_stops(acc, hooks):
                hooks.on_log(f"stopped on request after step {step - 1}; checkpoints are kept")
                raise TrainingCancelled(f"stopped on request after step {step - 1}")
            batches = rank_batches(groups, spec.grad_accum, acc.num_processes, acc.process_index)
            lr = scheduler.get_last_lr()[0]
            meter.start()
            loss = fsdp_step(acc, model, optimizer, scheduler, batches, spec.max_grad_norm)
            first = state.history[0]["loss"] if state.history else None
            loop.check_loss(loss, step, None if first is None else float(first), lr)
            tokens_per_s = meter.stop(sum(len(r) for b in batches for r in b)) * acc.num_processes
            metrics: Metrics = {
                "step": step,
                "loss": loss,
                "lr": lr,
                "tokens_per_s": tokens_per_s,
                "peak_memory_bytes": loop.peak_memory_bytes(acc.device),
                "trainable_params": trainable,
            }
            if step == steps or (spec.eval_interval and step % spec.eval_interval == 0):
                metrics["eval_loss"] = evaluate()
            state.history.append(metrics)
            state.step, state.consumed = step, state.consumed + len(batches) * acc.num_processes
            hooks.on_metrics(metrics)
            hooks.on_progress(step / steps, f"step {step} of {steps}, loss {loss:.4f}")
            if spec.checkpoint_interval and step % spec.checkpoint_interval == 0 and step < steps:
                save_checkpoint(trained, store, prefix, state, hooks)
        history = state.history
        result = TrainResult(
            adapter_prefix=spec.adapter_prefix(),
            method="full",
            attention=attention,
            precision=precision,
            device=acc.device.type,
            steps=steps,
            resumed_from_step=state.resumed_from,
            final_loss=float(history[-1]["loss"] or 0.0),
            eval_loss_before=state.eval_before,
            eval_loss_after=history[-1].get("eval_loss"),
            trainable_params=trainable,
            total_params=total,
            tokens_seen=meter.tokens * acc.num_processes,
            tokens_per_s=meter.mean * acc.num_processes,
            peak_memory_bytes=loop.peak_memory_bytes(acc.device),
            padding_fraction=stats.padding_fraction,
            duration_s=time.perf_counter() - started,
            metrics=history,
        )
        saved = SavedModel(config, tokenizer, tied)
        save_model(acc, model, saved, store, spec, result, hooks, manifest.stats)
        if acc.is_main_process:
            store.delete_prefix(prefix)  # the model is stored: checkpoints have served
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_sharded(model: Any, world: int) -> None:
    """Fail unless prepare() really sharded every parameter across the ranks (FSDP2)."""
    from torch.distributed.tensor import DTensor

    plain = [n for n, p in model.named_parameters() if not isinstance(p, DTensor)]
    if world > 1 and plain:
        raise TrainError(f"FSDP did not shard {len(plain)} parameters (first: {plain[0]})")


def tied_names(model: Any) -> set[str]:
    """Parameter names that share storage with an earlier one (tied embeddings)."""
    seen: set[int] = set()
    tied = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            tied.add(name)
        seen.add(id(param))
    return tied


def rank_batches(
    groups: Iterator[list[list[int]]], grad_accum: int, world: int, rank: int
) -> list[list[list[int]]]:
    """This rank's share of one step: every world-th micro-batch, starting at its rank."""
    mine = []
    for i in range(grad_accum * world):
        group = next(groups)
        if i % world == rank:
            mine.append(group)
    return mine


def fsdp_step(
    acc: Any,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    batches: list[list[list[int]]],
    max_norm: float,
) -> float:
    """One optimizer step over this rank's micro-batches; returns the loss averaged over ranks."""
    total = torch.zeros((), device=acc.device)
    for rows in batches:
        ids = loop.to_batch(rows, acc.device)
        with acc.autocast():
            loss = model(input_ids=ids, labels=ids).loss / len(batches)
        acc.backward(loss)
        total += loss.detach().float()
    acc.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(acc.reduce(total, reduction="mean"))


def any_rank_stops(acc: Any, hooks: Hooks) -> bool:
    """Whether any rank was asked to stop (all ranks must leave the loop together)."""
    flag = torch.tensor([1.0 if hooks.should_stop() else 0.0], device=acc.device)
    return bool(acc.reduce(flag, reduction="sum").item() > 0)


# --- checkpoints (sharded, DCP) -------------------------------------------------------


@dataclass
class Trained:
    """What a sharded checkpoint saves and restores on every rank."""

    acc: Any
    model: Any
    optimizer: Any  # accelerate's wrapper; DCP works on the torch optimizer inside it
    scheduler: Any


def save_checkpoint(
    t: Trained, store: ObjectStore, prefix: str, state: RunState, hooks: Hooks
) -> None:
    """Every rank stages and uploads its shards; rank 0 commits `<prefix>step-N/` last.

    Each rank uploads only the files it wrote, so this works when ranks sit on different
    nodes with their own local disks.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    rank = t.acc.process_index
    local = hooks.work_dir / f"checkpoint-{state.step}-rank{rank}"
    shutil.rmtree(local, ignore_errors=True)
    model_state, optim_state = get_state_dict(t.model, t.optimizer.optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=local)
    torch.save(rng_state(), local / f"rng-rank{rank}.pt")  # every rank draws its own dropout
    if t.acc.is_main_process:
        torch.save(t.scheduler.state_dict(), local / "scheduler.pt")
        # A run killed while uploading this very step may have left files of another layout.
        store.delete_prefix(checkpoints.step_prefix(prefix, state.step))
    t.acc.wait_for_everyone()
    checkpoints.upload_files(store, prefix, state.step, {p.name: p for p in local.iterdir()})
    t.acc.wait_for_everyone()  # every shard is in the store before the commit
    if t.acc.is_main_process:
        run_state = {
            "consumed": state.consumed,
            "world_size": t.acc.num_processes,
            "history": state.history,
            "eval_before": state.eval_before,
        }
        checkpoints.commit_checkpoint(store, prefix, state.step, run_state)
        checkpoints.prune_checkpoints(store, prefix, keep=state.step)
        hooks.on_log(f"checkpoint at step {state.step}")
    shutil.rmtree(local, ignore_errors=True)


def resume(t: Trained, store: ObjectStore, prefix: str, hooks: Hooks) -> RunState:
    """Load the job's newest committed checkpoint on every rank, if there is one."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    step = agreed_latest_step(store, prefix)
    if step is None:
        return RunState()
    rank = t.acc.process_index
    local = hooks.work_dir / f"resume-{step}-rank{rank}"
    shutil.rmtree(local, ignore_errors=True)
    # Every rank takes the whole checkpoint: DCP reads the shards it needs, even resharded.
    saved = checkpoints.load_checkpoint(store, prefix, step, local)
    model_state, optim_state = get_state_dict(t.model, t.optimizer.optimizer)
    target: dict[str, Any] = {"model": model_state, "optim": optim_state}
    dcp.load(target, checkpoint_id=local)
    set_state_dict(
        t.model,
        t.optimizer.optimizer,
        model_state_dict=target["model"],
        optim_state_dict=target["optim"],
    )
    t.scheduler.load_state_dict(torch.load(local / "scheduler.pt", weights_only=True))
    rng = local / f"rng-rank{rank}.pt"
    if rng.exists():  # absent when this rank did not exist in the run that wrote it
        restore_rng(torch.load(rng, weights_only=True))
    shutil.rmtree(local, ignore_errors=True)
    written_by = int(saved.get("world_size", t.acc.num_processes))
    note = "" if written_by == t.acc.num_processes else f" (written by {written_by} processes)"
    hooks.on_log(f"resumed from checkpoint at step {step}{note}")
    return RunState(
        step=step,
        consumed=int(saved["consumed"]),
        history=list(saved["history"]),
        eval_before=saved.get("eval_before"),
        resumed_from=step,
    )


def agreed_latest_step(store: ObjectStore, prefix: str) -> int | None:
    """Rank 0's view of the newest checkpoint, shared so every rank loads the same one."""
    import torch.distributed as dist

    found = [checkpoints.latest_step(store, prefix)]
    if dist.is_available() and dist.is_initialized():
        dist.broadcast_object_list(found, src=0)
    return found[0]


class SavedModel:
    """What rank 0 writes next to the weights so the result loads with from_pretrained."""

    def __init__(self, config: Any, tokenizer: Any, tied: set[str]) -> None:
        self.config, self.tokenizer, self.tied = config, tokenizer, tied


def save_model(
    acc: Any,
    model: Any,
    saved: SavedModel,
    store: ObjectStore,
    spec: TrainSpec,
    result: TrainResult,
    hooks: Hooks,
    dataset_stats: dict[str, Any],
) -> None:
    """Gather the full weights onto rank 0 and store them as a transformers checkpoint."""
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    # A collective: every rank takes part; only rank 0 receives the full tensors.
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(model, options=options)
    if acc.is_main_process:
        local = hooks.work_dir / "model"
        shutil.rmtree(local, ignore_errors=True)
        local.mkdir(parents=True)
        # Tied weights are stored once; from_pretrained ties them again.
        weights = {
            k: v.contiguous()
            for k, v in state.items()
            if k not in saved.tied and isinstance(v, torch.Tensor)
        }
        save_file(weights, local / "model.safetensors", metadata={"format": "pt"})
        saved.config.save_pretrained(local)
        saved.tokenizer.save_pretrained(local)
        store_artifact(store, spec, result, hooks.job_id, dataset_stats, local)
        shutil.rmtree(local, ignore_errors=True)
        hooks.on_log(f"model stored at {spec.adapter_prefix()}")
    acc.wait_for_everyone()


# --- launching on this machine ---------------------------------------------------------


def launch(spec: TrainSpec, store: ObjectStore, hooks: Hooks) -> TrainResult:
    """Run the recipe under torchrun on this machine and relay rank 0's events."""
    work = hooks.work_dir
    spec_file, stop_file = work / "spec.json", work / "STOP"
    spec_file.write_text(spec.model_dump_json())
    args = entrypoint_args(spec_file, hooks.job_id, work, stop_file)
    env = dict(os.environ, TAILOR_OBJECT_STORE_URL=store.url)
    env.pop(EVENTS_URL_ENV, None)  # this process relays rank 0's events: it alone posts them
    package_root = str(Path(tailor.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    run = Launch(
        local_command(spec.num_processes, args), env, work / "torchrun.log", stop_file,
        hooks.should_stop,
    )  # fmt: skip
    seen, code = launch_entrypoint(run, hooks.on_metrics, hooks.on_log, hooks.on_progress)
    return outcome(seen, code, run.log_path)


def outcome(seen: Relayed, code: int, log_path: Path) -> TrainResult:
    """The launch's result, or its failure as the exception the in-process recipes raise."""
    final = seen.final
    if code == 0 and final is not None and final["event"] == "result":
        final.pop("event")
        return TrainResult.model_validate({**final, "metrics": seen.metrics})
    if code == EXIT_CANCELLED or (final is not None and final["event"] == "cancelled"):
        raise TrainingCancelled("stopped on request")
    if final is not None and final["event"] == "error":
        message = str(final.get("message", "training failed"))
        raise SpecError(message) if code == EXIT_SPEC_ERROR else TrainError(message)
    tail = log_tail(log_path, 15)
    raise TrainError(f"torchrun exited with status {code}:\n" + "\n".join(tail))
