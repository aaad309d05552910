"""`tailor up`: the embedded platform starts its worker beside the API and stops it with itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never became ready")


def test_stopping_tailor_up_stops_its_workers(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "TAILOR_WORKSPACE": str(tmp_path / "ws")}
    cmd = [sys.executable, "-m", "tailor.cli.main", "up", "--port", str(port), "--serve-port", "0"]
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("celery" in " ".join(c.cmdline()) for c in children)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        _gone, alive = psutil.wait_procs(children, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert alive == []
