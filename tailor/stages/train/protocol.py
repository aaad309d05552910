"""The training protocol: how `tailor train run` talks to whoever launched it.

    tailor train run SPEC --job-id ID [--work-dir DIR] [--stop-file PATH]

The entrypoint prints one JSON object per line on stdout: `{"event": "metrics", ...}` per
optimizer step, `{"event": "progress", "fraction", "message"}`, `{"event": "log", "message"}`,
and last `{"event": "result", ...}`, `{"event": "error", "message", "kind"}` or
`{"event": "cancelled", "message"}`. Under torchrun only rank 0 speaks.

In cluster mode the pod's stdout is only its log: with `TAILOR_EVENTS_URL` and
`TAILOR_JOB_TOKEN` set (the operator sets both, the token from the job's Secret) rank 0 also
posts the same events to the API (`tailor.stages.train.posting`), which stores them as the
local relay does.

Exit status: 0 done; 1 failed (a retry may help: out of memory, a lost node); 3 the spec can
never work (bad spec file, unknown model, missing or empty dataset: do not retry, the
operator's podFailurePolicy neither); 4 stopped on request (SIGTERM or the stop file) with
checkpoints kept for a resume. torchrun reports any failed rank as 1, so several processes run
under `tailor train torchrun`, which exits with the status the ranks chose (`launcher_exit`).

Light on purpose (no torch): the worker, the operator and the entrypoint all import it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

EXIT_OK, EXIT_FAILED, EXIT_SPEC_ERROR, EXIT_CANCELLED = 0, 1, 3, 4
# Where a rank under `tailor train torchrun` leaves its exit status for the launcher.
EXIT_FILE_ENV = "TAILOR_EXIT_FILE"

Metrics = dict[str, float | int | None]

# Cluster mode: where the entrypoint posts its events, and the job-scoped token it posts with.
EVENTS_URL_ENV = "TAILOR_EVENTS_URL"
JOB_TOKEN_ENV = "TAILOR_JOB_TOKEN"


def events_path(job_id: str) -> str:
    """The API's internal route a job's events go to (append it to the API's URL)."""
    return f"/v1/internal/jobs/{job_id}/events"


def emit(event: str, stream: TextIO | None = None, **fields: Any) -> None:
    """Write one event line (`metrics`, `log`, `progress`, `result`, `error`) and flush it."""
    out = stream or sys.stdout
    out.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    out.flush()


def parse(line: str) -> dict[str, Any] | None:
    """An event from a line, or None for anything else the process printed."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "event" in obj else None


def entrypoint_args(
    spec_path: str | Path,
    job_id: str,
    work_dir: Path | None = None,
    stop_file: Path | None = None,
) -> list[str]:
    """The arguments of `tailor` that run the entrypoint (the operator's pods prepend `tailor`)."""
    args = ["train", "run", str(spec_path), "--job-id", job_id]
    if work_dir is not None:
        args += ["--work-dir", str(work_dir)]
    if stop_file is not None:
        args += ["--stop-file", str(stop_file)]
    return args


def local_command(processes: int, args: list[str]) -> list[str]:
    """The entrypoint on this machine: plain Python for one process, torchrun for several."""
    entry = ["-m", "tailor.cli.main", *args]
    if processes > 1:
        return [
            sys.executable, "-m", "tailor.cli.main", "train", "torchrun", "--standalone",
            f"--nproc-per-node={processes}", *entry,
        ]  # fmt: skip
    return [sys.executable, *entry]


def record_exit(code: int) -> None:
    """Leave a failing rank's status where `tailor train torchrun` reads it (if it launched us)."""
    path = os.environ.get(EXIT_FILE_ENV)
    if code == EXIT_OK or not path:
        return
    try:  # the first rank to fail speaks; the others fail the same way or because of it
        with open(path, "x") as out:
            out.write(str(code))
    except FileExistsError:
        pass


def launcher_exit(torchrun_code: int, exit_file: Path) -> int:
    """torchrun's status, or on a failure the status a rank recorded (3 stays 3, not 1)."""
    if torchrun_code == EXIT_OK or not exit_file.exists():
        return torchrun_code
    try:
        return int(exit_file.read_text().strip())
    except ValueError:
        return torchrun_code


def run_torchrun(torchrun_args: list[str]) -> int:
    """Run torchrun with these arguments, SIGTERM passed on; the status the ranks chose."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tailor-torchrun-") as tmp:
        exit_file = Path(tmp) / "exit"
        env = dict(os.environ, **{EXIT_FILE_ENV: str(exit_file)})
        command = [sys.executable, "-m", "torch.distributed.run", *torchrun_args]
        proc = subprocess.Popen(command, env=env)
        previous = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
        try:
            code = proc.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)
        return launcher_exit(code, exit_file)


def _say_nothing(*_: Any) -> None:
    pass


@dataclass
class Relayed:
    """What a launch reported: its final event (result, error or cancelled) and its metrics."""

    final: dict[str, Any] | None = None
    metrics: list[Metrics] = field(default_factory=list)


def relay(
    lines: Iterable[str],
    on_metrics: Callable[[Metrics], None] = _say_nothing,
    on_log: Callable[[str], None] = _say_nothing,
    on_progress: Callable[[float, str], None] = _say_nothing,
) -> Relayed:
    """Forward the events of an entrypoint's output as they come; its final event and metrics."""
    seen = Relayed()
    for line in lines:
        event = parse(line)
        if event is None:
            continue
        kind = event.pop("event")
        if kind == "metrics":
            seen.metrics.append(event)
            on_metrics(event)
        elif kind == "log":
            on_log(str(event.get("message", "")))
        elif kind == "progress":
            on_progress(float(event.get("fraction", 0.0)), str(event.get("message", "")))
        elif kind in ("result", "error", "cancelled"):
            # A cancel counts as one though torchrun exits 1 (not rank 0's 4) after it
            # has stopped the other ranks.
            seen.final = {"event": kind, **event}
    return seen


@dataclass
class Launch:
    """One entrypoint process on this machine: its command, environment and stop flag."""

    command: list[str]
    env: dict[str, str]
    log_path: Path  # its stderr, whose tail explains a failure without an error event
    stop_file: Path  # passed as --stop-file: every rank stops at its next step once it exists
    should_stop: Callable[[], bool]
    poll_s: float = 0.2  # how often to ask should_stop (it may cost a database query)


def launch(
    run: Launch,
    on_metrics: Callable[[Metrics], None] = _say_nothing,
    on_log: Callable[[str], None] = _say_nothing,
    on_progress: Callable[[float, str], None] = _say_nothing,
) -> tuple[Relayed, int]:
    """Run the entrypoint to its end, relaying its events; what it reported and its exit status."""
    run.stop_file.unlink(missing_ok=True)
    with run.log_path.open("a") as log:
        proc = subprocess.Popen(
            run.command, stdout=subprocess.PIPE, stderr=log, text=True, env=run.env,
            start_new_session=True,  # so that torchrun's ranks go with it
        )  # fmt: skip
        done = threading.Event()
        watcher = threading.Thread(target=_forward_stop, args=(run, done), daemon=True)
        watcher.start()
        try:
            seen = relay(proc.stdout or (), on_metrics, on_log, on_progress)
            code = proc.wait()
        finally:
            done.set()
            watcher.join()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    return seen, code


def _forward_stop(run: Launch, done: threading.Event) -> None:
    # A stop file rather than a signal: under torchrun every rank sees it, and each stops
    # at the same step boundary with its checkpoint.
    while not done.wait(run.poll_s):
        if run.should_stop():
            run.stop_file.touch()
            return


def log_tail(log_path: Path, lines: int) -> list[str]:
    """The last lines the entrypoint wrote on stderr."""
    if not log_path.exists():
        return []
    return log_path.read_text(errors="replace").strip().splitlines()[-lines:]
