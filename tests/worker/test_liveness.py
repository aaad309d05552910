"""The worker's liveness evidence: a file its consumer loop touches while it turns."""

from __future__ import annotations

import time
from pathlib import Path

from .conftest import start_worker, stop


def test_a_running_worker_keeps_touching_its_alive_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    Path(env["TAILOR_WORKSPACE"]).mkdir(parents=True)
    alive, log = tmp_path / "alive", tmp_path / "worker.log"
    worker = start_worker(
        {**env, "TAILOR_ALIVE_FILE": str(alive), "TAILOR_ALIVE_INTERVAL_S": "0.5"}, log
    )
    try:
        deadline = time.monotonic() + 120
        while not alive.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alive.exists(), log.read_text()[-2000:]
        first = alive.stat().st_mtime_ns
        while alive.stat().st_mtime_ns == first and time.monotonic() < deadline:
            time.sleep(0.1)

        assert alive.stat().st_mtime_ns > first, log.read_text()[-2000:]
    finally:
        stop(worker)
