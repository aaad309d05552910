"""What a job used: GPU type, GPUs, GPU-seconds and CPU-seconds.

The local runner measures it around a job's work (wall time x the GPUs the stage ran on, CPU
time of the runner's thread and of the processes it waited for); on a cluster the operator
reports it from the pods' start and end times x the GPUs each pod was given. Prices and
budgets are `tailor.services.costs`: this is only the measurement, kept on the job row.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Usage:
    """Resources a job used, in the units it is priced in."""

    gpu_type: str | None = None  # None: no GPU (a CPU-only run)
    gpus: int = 0
    gpu_seconds: float = 0.0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The JSON stored on the job."""
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def of(cls, stored: dict[str, Any]) -> Usage:
        """Read back what `as_dict` stored (an empty dict: nothing used)."""
        return cls(
            gpu_type=stored.get("gpu_type"),
            gpus=int(stored.get("gpus") or 0),
            gpu_seconds=float(stored.get("gpu_seconds") or 0.0),
            cpu_seconds=float(stored.get("cpu_seconds") or 0.0),
            wall_seconds=float(stored.get("wall_seconds") or 0.0),
        )

    def plus(self, other: Usage) -> Usage:
        """Both attempts' usage (a job re-run after its worker died pays for both)."""
        return Usage(
            gpu_type=other.gpu_type or self.gpu_type,
            gpus=max(self.gpus, other.gpus),
            gpu_seconds=self.gpu_seconds + other.gpu_seconds,
            cpu_seconds=self.cpu_seconds + other.cpu_seconds,
            wall_seconds=self.wall_seconds + other.wall_seconds,
        )


def local_usage(wall_seconds: float, cpu_seconds: float, gpu_type: str | None, gpus: int) -> Usage:
    """A local run: every device it held for its whole wall time; no GPU, no GPU-seconds."""
    gpus = gpus if gpu_type else 0
    return Usage(
        gpu_type=gpu_type if gpus else None,
        gpus=gpus,
        gpu_seconds=wall_seconds * gpus,
        cpu_seconds=cpu_seconds,
        wall_seconds=wall_seconds,
    )


@dataclass
class Stopwatch:
    """Wall time and CPU time from its start: this thread's and its finished child processes'.

    A training subprocess is waited for, so its CPU time lands in RUSAGE_CHILDREN; a worker
    runs one job per process at a time, so no other job's children are counted.
    """

    wall: float
    thread_cpu: float
    children_cpu: float

    @classmethod
    def start(cls) -> Stopwatch:
        """Start measuring now."""
        return cls(time.monotonic(), time.thread_time(), _children_cpu())

    def read(self) -> tuple[float, float]:
        """(wall seconds, CPU seconds) since the start."""
        cpu = (time.thread_time() - self.thread_cpu) + (_children_cpu() - self.children_cpu)
        return time.monotonic() - self.wall, max(0.0, cpu)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def add_usage(job_usage: dict[str, Any], used: Usage) -> dict[str, Any]:
    """The job's stored usage with one more attempt's added."""
    return Usage.of(job_usage).plus(used).as_dict()


def local_gpu_count() -> int:
    """GPUs this machine gives a local job: the CUDA_VISIBLE_DEVICES list when set, else the
    NVIDIA device files (no torch import: the API estimates with it too)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len([p for p in Path("/dev").glob("nvidia*") if p.name[6:].isdigit()])
