"""Who runs a job: a worker process's identity, and whether that process is still there.

An identity is `host/pid-namespace/pid/start-time`. On the machine (and in the PID namespace)
that wrote it, the process table answers at once whether the worker lives: a killed worker's
pid is gone, or belongs to a newer process with another start time. Elsewhere (the API in
another pod) only the job's heartbeat can tell, so a worker that stopped beating for
`stale_after_s` counts as gone.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from tailor.db.base import utcnow


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot; None if no such process runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no such process (or no /proc: not Linux)
        return None
    # The command name (field 2) may hold spaces and parentheses: count from its end.
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # a zombie has exited: only its pid is left
        return None
    return fields[19]


@lru_cache
def _machine() -> str:
    """This host and PID namespace: where a pid means the same process as here."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()}/{namespace}"


def identity_of(pid: int) -> str:
    """The identity of process `pid` of this machine."""
    return f"{_machine()}/{pid}/{_start_ticks(pid) or '-'}"


def this_worker() -> str:
    """The identity of the calling process."""
    return identity_of(os.getpid())


def _here(worker: str) -> tuple[int, str] | None:
    """(pid, start ticks) when `worker` ran on this machine and can be looked up, else None."""
    parts = worker.rsplit("/", 2)
    if len(parts) != 3:
        return None
    machine, pid, start = parts
    if machine != _machine() or machine.endswith("/-") or not pid.isdigit() or start == "-":
        return None
    return int(pid), start


def is_alive(
    worker: str | None,
    heartbeat_at: datetime | None,
    stale_after_s: float,
    now: datetime | None = None,
) -> bool:
    """Whether the worker that claimed a job still runs (see the module's docstring)."""
    if not worker:
        return False
    local = _here(worker)
    if local is not None:
        pid, start = local
        return _start_ticks(pid) == start
    if heartbeat_at is None:
        return False
    return (now or utcnow()) - heartbeat_at < timedelta(seconds=stale_after_s)
