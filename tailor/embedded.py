"""The embedded default: one machine, no setup — migrate, then run workers beside the API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from tailor.config import Settings
from tailor.db import migrate

PRIVATE_UMASK = 0o077


def worker_command(concurrency: int = 1) -> list[str]:
    """The command that starts a real prefork Celery worker for Tailor's tasks."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.app",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def gateway_command(host: str, port: int) -> list[str]:
    """The command that runs the inference gateway (`tailor serve`)."""
    return [sys.executable, "-m", "tailor.cli.main", "serve", "--host", host, "--port", str(port)]


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def run_embedded(
    settings: Settings, workers: int = 1, gateway: tuple[str, int] | None = None
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Prepare the workspace and schema; run `workers` worker processes and, if asked, the
    inference gateway on (host, port) while inside.

    Everything created meanwhile, here and in the processes started here (the database, the
    broker's, logs, shards, checkouts), is private to the user: umask 077.
    """
    umask = os.umask(PRIVATE_UMASK)
    try:
        with _embedded(settings, workers, gateway) as procs:
            yield procs
    finally:
        os.umask(umask)


@contextmanager
def _embedded(
    settings: Settings, workers: int, gateway: tuple[str, int] | None
) -> Iterator[list[subprocess.Popen[bytes]]]:
    settings.ensure_workspace()
    migrate.upgrade(settings.database_url)
    env = {**os.environ, "TAILOR_WORKSPACE": str(settings.workspace)}
    log = (settings.workspace / "worker.log").open("ab")
    commands = [worker_command() for _ in range(workers)]
    if gateway:
        commands.append(gateway_command(*gateway))
    procs = [
        subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT) for cmd in commands
    ]
    # uvicorn re-raises the SIGTERM it handled once it has shut down; with the default action
    # that would end this process before the children below are stopped.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield procs
    finally:
        signal.signal(signal.SIGTERM, previous)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
