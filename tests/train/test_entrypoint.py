"""`tailor train run` as executors run it: JSON-line events, exit statuses, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tailor.config import get_settings
from tailor.stages.train import checkpoints
from tailor.stages.train.entrypoint import run_command, run_training
from tailor.stages.train.protocol import EXIT_CANCELLED, EXIT_FAILED, EXIT_SPEC_ERROR, parse
from tailor.stages.train.spec import TrainSpec
from tailor.storage import FileStore
from tests.train.conftest import TEAM, make_spec

pytestmark = pytest.mark.slow


def _env(store: FileStore, tmp_path: Path) -> dict[str, str]:
    return dict(
        os.environ, TAILOR_OBJECT_STORE_URL=store.url, TAILOR_WORKSPACE=str(tmp_path / "ws")
    )


def _start(spec: TrainSpec, job_id: str, store: FileStore, tmp_path: Path) -> subprocess.Popen[str]:
    path = tmp_path / f"{job_id}.json"
    path.write_text(spec.model_dump_json())
    command = [sys.executable, "-m", "tailor.cli.main", "train", "run", str(path)]
    return subprocess.Popen(
        [*command, "--job-id", job_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(store, tmp_path),
    )


def _events(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    return [e for e in map(parse, proc.stdout) if e]


def test_a_killed_run_resumes_from_its_last_checkpoint_on_the_same_curve(
    tiny_base: Path, dataset: FileStore, tmp_path: Path
) -> None:
    spec = make_spec(tiny_base, max_steps=6, checkpoint_interval=2, lora_dropout=0.1)
    prefix = spec.checkpoint_prefix("job-kill")
    first = _start(spec, "job-kill", dataset, tmp_path)
    assert first.stdout is not None
    for line in first.stdout:  # kill -9 as soon as the first checkpoint is committed
        event = parse(line) or {}
        if str(event.get("message", "")).startswith("checkpoint at step"):
            first.kill()
            break
    assert first.wait() == -signal.SIGKILL
    kept = checkpoints.latest_step(dataset, prefix)
    assert kept is not None and 2 <= kept < 6

    second = _start(spec, "job-kill", dataset, tmp_path)
    events = _events(second)

    assert second.wait() == 0
    result = events[-1]
    assert result["event"] == "result"
    assert (result["resumed_from_step"], result["steps"]) == (kept, 6)
    steps = [e["step"] for e in events if e["event"] == "metrics"]
    assert steps == list(range(kept + 1, 7))  # nothing done twice, nothing skipped
    resumed = json.loads(dataset.get_bytes(spec.adapter_prefix() + "tailor.json"))["history"]
    straight = run_training(spec, dataset, job_id="job-straight", work_dir=tmp_path / "straight")
    assert [m["step"] for m in resumed] == [1, 2, 3, 4, 5, 6]
    assert [m["loss"] for m in resumed] == pytest.approx(
        [m["loss"] for m in straight.metrics], rel=1e-3
    )
    assert result["eval_loss_after"] == pytest.approx(straight.eval_loss_after, rel=1e-3)


def test_sigterm_stops_at_the_next_step_with_exit_status_4_and_no_adapter(
    tiny_base: Path, dataset: FileStore, tmp_path: Path
) -> None:
    # What the embedded executor sends on a cancel, and Kubernetes on a preemption.
    spec = make_spec(tiny_base, max_steps=200, checkpoint_interval=1)
    proc = _start(spec, "job-term", dataset, tmp_path)
    assert proc.stdout is not None
    for line in proc.stdout:
        if (parse(line) or {}).get("event") == "metrics":
            proc.send_signal(signal.SIGTERM)
            break
    rest = _events(proc)

    assert proc.wait() == EXIT_CANCELLED == 4
    assert "stopped on request" in rest[-1]["message"]
    assert all(e["event"] != "result" for e in rest)
    assert not dataset.list(spec.adapter_prefix())
    assert checkpoints.latest_step(dataset, spec.checkpoint_prefix("job-term"))  # kept


def _in_process(
    spec: TrainSpec, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The spec's file, with the env an executor gives the entrypoint, for `run_command` here."""
    for name, value in _env(store, tmp_path).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    path = tmp_path / "spec.json"
    path.write_text(spec.model_dump_json())
    return path


def _printed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The JSON-line events the entrypoint printed on stdout."""
    return [e for e in map(parse, capsys.readouterr().out.splitlines()) if e]


def test_a_bad_dataset_ends_with_an_error_event_and_exit_status_3(
    tiny_base: Path,
    store: FileStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _in_process(make_spec(tiny_base, dataset_id="gone"), store, tmp_path, monkeypatch)

    code = run_command(path, "job-bad")

    get_settings.cache_clear()
    events = _printed(capsys)
    assert code == EXIT_SPEC_ERROR == 3
    assert events[-1]["event"] == "error" and events[-1]["kind"] == "DatasetError"
    assert "dataset 'gone' of team 'acme' not found" in events[-1]["message"]
    assert not store.list(f"teams/{TEAM}/adapters/")


def test_a_crash_ends_with_an_error_event_naming_its_kind_not_its_text(
    tiny_base: Path,
    store: FileStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("upload to https://ci:hunter2@s3.example.com failed")

    monkeypatch.setattr("tailor.stages.train.entrypoint.run_training", crash)
    path = _in_process(make_spec(tiny_base), store, tmp_path, monkeypatch)

    with pytest.raises(RuntimeError):  # the traceback still reaches the pod's log
        run_command(path, "job-crash")

    get_settings.cache_clear()
    last = _printed(capsys)[-1]
    assert (last["event"], last["kind"]) == ("error", "InternalError")
    assert "RuntimeError" in last["message"] and "hunter2" not in last["message"]


# Loads everything first, then caps the address space so the first big batch cannot fit.
_CAPPED = textwrap.dedent(
    """
    import resource, sys
    import pyarrow.parquet, torch, transformers, peft
    from tailor.cli.main import app
    from tailor.stages.train.recipes import lora
    torch.zeros(1) + 1
    status = open("/proc/self/status").read()
    vm = int(status.split("VmSize:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))
    app(["train", "run", *sys.argv[1:]], prog_name="tailor")
    """
)


def test_running_out_of_memory_fails_with_the_measurement_and_what_to_change(
    tiny_base: Path, dataset: FileStore, tmp_path: Path
) -> None:
    # 64 rows of 512 tokens: the logits alone are 64 x 512 x 4096 floats (512 MiB).
    spec = make_spec(tiny_base, seq_len=512, micro_batch=64, max_steps=1, eval_batches=1)
    path = tmp_path / "spec.json"
    path.write_text(spec.model_dump_json())
    proc = subprocess.run(
        [sys.executable, "-c", _CAPPED, str(path), "--job-id", "job-oom"],
        capture_output=True,
        text=True,
        env=_env(dataset, tmp_path),
        check=False,
    )

    events = [e for e in map(parse, proc.stdout.splitlines()) if e]
    assert proc.returncode == EXIT_FAILED, proc.stderr[-2000:]
    message = events[-1]["message"]
    assert events[-1]["kind"] == "OutOfMemory"
    assert "out of memory" in message and "GiB" in message
    assert "micro_batch 32 with grad_accum 2" in message and "gradient_checkpointing" in message
