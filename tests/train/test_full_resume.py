"""Full fine-tuning (FSDP2, 2 processes): sharded checkpoints, resume after SIGKILL, stopping."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from tailor.stages.train import checkpoints
from tailor.stages.train.errors import TrainingCancelled
from tailor.stages.train.protocol import emit, parse, relay
from tailor.stages.train.recipes.full import outcome
from tailor.stages.train.spec import TrainSpec
from tailor.storage import FileStore
from tests.train.conftest import make_spec


def _start(spec: TrainSpec, job_id: str, store: FileStore, tmp_path: Path) -> subprocess.Popen[str]:
    path = tmp_path / f"{job_id}.json"
    path.write_text(spec.model_dump_json())
    env = dict(os.environ, TAILOR_OBJECT_STORE_URL=store.url, TAILOR_WORKSPACE=str(tmp_path / "ws"))
    return subprocess.Popen(
        [sys.executable, "-m", "tailor.cli.main", "train", "run", str(path), "--job-id", job_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )


def _kill_everything(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the CLI, torchrun and the ranks (torchrun puts each rank in its own session)."""
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    os.killpg(proc.pid, signal.SIGKILL)
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):  # already gone with its group
            process.kill()
    psutil.wait_procs(tree, timeout=30)


def _events(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    return [e for e in map(parse, proc.stdout) if e]


@pytest.mark.slow
def test_a_killed_full_fine_tune_resumes_from_its_sharded_checkpoint_on_the_same_curve(
    tiny_base: Path, dataset: FileStore, tmp_path: Path
) -> None:
    spec = make_spec(
        tiny_base,
        method="full",
        num_processes=2,
        max_steps=6,
        checkpoint_interval=3,
        learning_rate=2e-3,
        micro_batch=2,
        eval_batches=1,
    )
    prefix = spec.checkpoint_prefix("job-full-kill")
    first = _start(spec, "job-full-kill", dataset, tmp_path)
    assert first.stdout is not None
    uninterrupted: list[dict[str, Any]] = []  # the first run is the reference until it dies
    for line in first.stdout:
        event = parse(line) or {}
        if event.get("event") == "metrics":
            uninterrupted.append(event)
        if event.get("step") == 5:  # two steps past the checkpoint at step 3: kill -9
            _kill_everything(first)
            break
    first.wait()
    assert checkpoints.latest_step(dataset, prefix) == 3  # step 6 is the last: never saved
    stored = {key.rsplit("/", 1)[1] for key in dataset.list(checkpoints.step_prefix(prefix, 3))}
    assert {".metadata", "__0_0.distcp", "__1_0.distcp", "state.json"} <= stored  # per rank

    second = _start(spec, "job-full-kill", dataset, tmp_path)
    events = _events(second)

    assert second.wait() == 0
    result = events[-1]
    assert result["event"] == "result"
    assert (result["resumed_from_step"], result["steps"]) == (3, 6)
    assert any(e.get("message") == "resumed from checkpoint at step 3" for e in events)
    assert [e["step"] for e in events if e["event"] == "metrics"] == [4, 5, 6]
    assert not dataset.list(prefix)  # the model is stored: checkpoints have served
    history = json.loads(dataset.get_bytes(spec.adapter_prefix() + "tailor.json"))["history"]
    assert [m["step"] for m in history] == [1, 2, 3, 4, 5, 6]
    # Step 4 checks the restored weights, step 5 the restored optimizer and schedule too.
    assert [m["loss"] for m in history[:5]] == pytest.approx(
        [m["loss"] for m in uninterrupted[:5]], rel=1e-3
    )
    assert [m["lr"] for m in history[:5]] == pytest.approx([m["lr"] for m in uninterrupted[:5]])


def test_a_stop_reported_by_rank_0_is_a_cancellation_although_torchrun_exits_1(
    tmp_path: Path,
) -> None:
    # torchrun stops the other ranks once rank 0 leaves with status 4, then exits with 1.
    out = io.StringIO()
    emit("metrics", out, step=1, loss=6.5)
    emit("log", out, message="stopped on request after step 1; checkpoints are kept")
    emit("cancelled", out, message="stopped on request after step 1")
    logs: list[str] = []

    seen = relay(io.StringIO(out.getvalue()), on_log=logs.append)

    assert [m["step"] for m in seen.metrics] == [1]
    assert logs == ["stopped on request after step 1; checkpoints are kept"]
    with pytest.raises(TrainingCancelled, match="stopped on request"):
        outcome(seen, 1, tmp_path / "torchrun.log")
