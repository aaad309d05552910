"""The launcher every local executor uses: events relayed as they come, a stop as a stop file."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
from pathlib import Path

from tailor.stages.train.protocol import EXIT_CANCELLED, EXIT_SPEC_ERROR, Launch, launch

# Stands in for `tailor train run`: speaks the protocol and heeds the stop file.
_ENTRYPOINT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tailor.stages.train.protocol import emit
    stop = Path(sys.argv[1])
    print("a line that is not an event", flush=True)
    for step in range(1, 10_000):
        emit("metrics", step=step, loss=1.0 / step)
        if step == 1:
            emit("progress", fraction=0.5, message="training")
        if stop.exists():
            emit("cancelled", message=f"stopped on request after step {step}")
            sys.exit(4)
        if step == int(sys.argv[2]):
            emit("error", message="the dataset is empty", kind="DatasetError")
            sys.exit(3)
        time.sleep(0.01)
    """
)


def _launch(tmp_path: Path, fail_at: int, should_stop: threading.Event) -> Launch:
    stop_file = tmp_path / "STOP"
    return Launch(
        [sys.executable, "-c", _ENTRYPOINT, str(stop_file), str(fail_at)],
        dict(os.environ),
        tmp_path / "train.log",
        stop_file,
        should_stop.is_set,
    )


def test_events_reach_the_callbacks_and_the_final_one_and_the_status_come_back(
    tmp_path: Path,
) -> None:
    progress: list[tuple[float, str]] = []

    seen, code = launch(
        _launch(tmp_path, 3, threading.Event()), on_progress=lambda f, m: progress.append((f, m))
    )

    assert code == EXIT_SPEC_ERROR
    assert [m["step"] for m in seen.metrics] == [1, 2, 3]
    assert progress == [(0.5, "training")]
    assert seen.final == {
        "event": "error",
        "message": "the dataset is empty",
        "kind": "DatasetError",
    }


def test_a_stop_reaches_the_entrypoint_through_its_stop_file(tmp_path: Path) -> None:
    stop = threading.Event()

    def stop_after_first_step(metrics: dict[str, float | int | None]) -> None:
        stop.set()

    seen, code = launch(_launch(tmp_path, 0, stop), on_metrics=stop_after_first_step)

    assert code == EXIT_CANCELLED
    assert seen.final is not None and seen.final["event"] == "cancelled"
