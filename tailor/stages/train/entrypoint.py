"""The one entrypoint every executor runs: in-process, a local subprocess, or a Kubernetes Job.

`tailor train run SPEC --job-id ID` (the CLI) calls `run_command`; how it reports and what its
exit status means is the protocol of `tailor.stages.train.protocol`.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tailor.stages.train import auto
from tailor.stages.train.errors import SpecError, TrainError, TrainingCancelled
from tailor.stages.train.posting import EventPoster
from tailor.stages.train.protocol import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SPEC_ERROR,
    Metrics,
    emit,
)
from tailor.stages.train.spec import TrainResult, TrainSpec
from tailor.storage import ObjectStore


def run_training(
    spec: TrainSpec,
    store: ObjectStore,
    *,
    job_id: str,
    work_dir: Path,
    on_metrics: Callable[[Metrics], None] | None = None,
    on_log: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[float, str], None] | None = None,
) -> TrainResult:
    """Run one fine-tune to a stored artefact; raises TrainError or TrainingCancelled.

    A run with the same job_id resumes from that job's newest checkpoint in the store.
    """
    from tailor.stages.train.loop import Hooks  # deferred: torch loads only when training runs

    work_dir.mkdir(parents=True, exist_ok=True)
    hooks = Hooks(job_id, work_dir)
    hooks.on_metrics = on_metrics or hooks.on_metrics
    hooks.on_log = on_log or hooks.on_log
    hooks.should_stop = should_stop or hooks.should_stop
    hooks.on_progress = on_progress or hooks.on_progress
    try:
        spec, chosen = _resolve_hyperparameters(spec, store, hooks)
        result = _dispatch(spec, store, hooks)
        return result.model_copy(update={"hyperparameters": chosen.model_dump(mode="json")})
    except (TrainError, TrainingCancelled):
        raise
    except Exception as exc:
        from tailor.stages.train import base_model, loop

        if loop.is_oom(exc):  # outside a training step: loading, evaluation, saving
            peak = loop.peak_memory_bytes(base_model.training_device())
            raise loop.oom_advice(spec, 0, peak, None) from exc
        raise


def _resolve_hyperparameters(
    spec: TrainSpec, store: ObjectStore, hooks: Any
) -> tuple[TrainSpec, auto.ChosenHyperparameters]:
    """Count the train split's tokens if needed, choose, and say so in the job's log.

    Here rather than in `auto` (kept pure, so the API's estimates import it without torch).
    """
    from tailor.stages.train import base_model, data
    from tailor.stages.train.fim import tokenizer_fim_ids

    train_tokens = None
    source = base_model.fetch_base(spec.base_location(), hooks.work_dir / "cache")
    config = base_model.load_config(source, spec.base_revision)
    if spec.max_steps is None:
        tokenizer = base_model.load_tokenizer(source, spec.base_revision)
        fim_ids = tokenizer_fim_ids(tokenizer, spec.fim_tokens) if spec.fim_rate > 0 else None
        pipeline = data.token_pipeline(tokenizer, fim_ids, spec.fim_rate, spec.spm_rate)
        manifest = data.read_manifest(store, spec.team, spec.dataset_id)
        train_tokens = data.count_train_tokens(store, manifest, pipeline, hooks.work_dir / "count")
    chosen = auto.choose(
        spec,
        train_tokens,
        auto.estimate_params(config),
        model_type=config.model_type,
        head_share=auto.head_share(config),
    )
    if chosen.auto:
        hooks.on_log(f"hyperparameters chosen ({', '.join(chosen.auto)} auto): {chosen.reason}")
    return auto.apply(spec, chosen), chosen


def _dispatch(spec: TrainSpec, store: ObjectStore, hooks: Any) -> TrainResult:
    if spec.method == "lora":
        from tailor.stages.train.recipes import lora

        return lora.run(spec, store, hooks)
    if spec.method == "qlora":
        from tailor.stages.train.recipes import qlora

        return qlora.run(spec, store, hooks)
    from tailor.stages.train.recipes import full

    if "LOCAL_RANK" in os.environ:  # already one rank of a torchrun launch
        return full.run_rank(spec, store, hooks)
    return full.launch(spec, store, hooks)


def load_spec(path: Path) -> TrainSpec:
    """A TrainSpec from a JSON or YAML file; unknown fields are errors."""
    text = path.read_text()
    raw: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return TrainSpec.model_validate(raw)


def spec_errors(exc: ValidationError) -> str:
    """A validation failure as one clause per field, naming the field."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        lines.append(f"{where}: {err['msg']}")
    return "invalid TrainSpec: " + "; ".join(lines)


def exit_code(exc: BaseException) -> int:
    """The exit status a failure maps to (see `tailor.stages.train.protocol`)."""
    if isinstance(exc, TrainingCancelled):
        return EXIT_CANCELLED
    if isinstance(exc, SpecError):
        return EXIT_SPEC_ERROR
    return EXIT_FAILED


def _is_main_process() -> bool:
    # Under torchrun every rank runs the entrypoint; rank 0 speaks for the job.
    return os.environ.get("RANK", "0") == "0"


Say = Callable[..., None]


def _speaker(poster: EventPoster | None) -> Say:
    """How rank 0 reports an event: a JSON line on stdout, and to the API in cluster mode."""

    def say(event: str, **fields: Any) -> None:
        if not _is_main_process():
            return
        emit(event, **fields)
        if poster is not None:
            poster.put({"event": event, **fields})

    return say


def run_command(
    spec_path: Path, job_id: str, work_dir: Path | None = None, stop_file: Path | None = None
) -> int:
    """Read the spec, train with the settings' store, report as JSON lines; the exit status."""
    poster = EventPoster.from_env() if _is_main_process() else None
    try:
        return _run(spec_path, job_id, work_dir, stop_file, _speaker(poster))
    finally:
        if poster is not None:
            poster.close()  # what the API has not taken within its wait is dropped


def _run(
    spec_path: Path, job_id: str, work_dir: Path | None, stop_file: Path | None, say: Say
) -> int:
    try:
        spec = load_spec(spec_path)
    except ValidationError as exc:
        say("error", message=spec_errors(exc), kind="SpecError")
        return EXIT_SPEC_ERROR
    except (OSError, ValueError, yaml.YAMLError) as exc:
        say("error", message=f"cannot read spec {spec_path}: {exc}", kind="SpecError")
        return EXIT_SPEC_ERROR
    from tailor.config import get_settings
    from tailor.storage import get_store

    settings = get_settings()
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a cancel, a preemption, a drain) stops at the next step boundary.
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def should_stop() -> bool:
        return stop.is_set() or (stop_file is not None and stop_file.exists())

    work = work_dir or settings.ensure_workspace() / "jobs" / job_id / "work"
    try:
        result = run_training(
            spec,
            get_store(settings),
            job_id=job_id,
            work_dir=work,
            on_metrics=lambda m: say("metrics", **m),
            on_log=lambda line: say("log", message=line),
            should_stop=should_stop,
            on_progress=lambda f, msg: say("progress", fraction=round(f, 4), message=msg),
        )
    except TrainingCancelled as exc:
        say("log", message=f"{exc}; no adapter was stored, checkpoints are kept")
        say("cancelled", message=str(exc))
        return EXIT_CANCELLED
    except TrainError as exc:
        say("error", message=str(exc), kind=type(exc).__name__)
        return exit_code(exc)
    except Exception as exc:
        # Out of memory, a lost device, a bug: its kind goes to the job's error (a cluster
        # job's Failed condition cannot say), its text only to the pod's log, as a worker's
        # crash (`tailor.jobs.attempt`): an exception may quote a URL with its credential.
        message = f"internal error ({type(exc).__name__}); the training log has the details"
        say("error", message=message, kind="InternalError")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    say("result", **result.model_dump(mode="json", exclude={"metrics"}))
    return EXIT_OK
