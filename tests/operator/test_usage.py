"""What a training workload used, from its pods' times and GPUs (pure, no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tailor_operator.status import workload_usage

GPU = "nvidia.com/gpu"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def pod(start: str | None, end: str | None, gpus: int, cpu: str = "8") -> dict[str, Any]:
    """A pod as the kubelet reports it: started, its container terminated at `end` (or running)."""
    state = {"terminated": {"finishedAt": end, "exitCode": 0}} if end else {"running": {}}
    resources = {"requests": {"cpu": cpu}, "limits": {GPU: gpus} if gpus else {}}
    return {
        "spec": {"containers": [{"name": "trainer", "resources": resources}]},
        "status": {"startTime": start, "containerStatuses": [{"state": state}]},
    }


def test_gpu_seconds_are_each_pods_run_times_its_gpus() -> None:
    pods = [
        pod("2026-12-02T10:00:00Z", "2026-12-02T10:30:00Z", 4),  # 30 min x 4 GPUs
        pod("2026-12-02T10:00:00Z", "2026-12-02T11:00:00Z", 4, cpu="500m"),  # 60 min x 4
    ]

    used = workload_usage(pods, {}, GPU, "nvidia-a100-80gb", NOW)

    assert used == {
        "gpu_type": "nvidia-a100-80gb",
        "gpus": 8,
        "gpu_seconds": 4 * 1800.0 + 4 * 3600.0,
        "cpu_seconds": 8 * 1800.0 + 0.5 * 3600.0,
        "wall_seconds": 3600.0,
    }


def test_a_running_pod_counts_until_now_and_an_unscheduled_one_not_at_all() -> None:
    pods = [pod("2026-12-02T11:00:00Z", None, 1), pod(None, None, 1)]

    used = workload_usage(pods, {}, GPU, "nvidia-a100-80gb", NOW)

    assert (used["gpus"], used["gpu_seconds"]) == (1, 3600.0)


def test_with_the_pods_gone_the_jobs_times_and_template_stand_in() -> None:
    template = pod(None, None, 2)["spec"]
    job = {
        "spec": {"completions": 2, "template": {"spec": template}},
        "status": {"startTime": "2026-12-02T10:00:00Z", "completionTime": "2026-12-02T10:10:00Z"},
    }

    used = workload_usage([], job, GPU, "nvidia-a100-80gb", NOW)

    assert (used["gpus"], used["gpu_seconds"]) == (4, 2 * 2 * 600.0)


def test_a_cpu_only_workload_has_no_gpu_type() -> None:
    used = workload_usage([pod("2026-12-02T11:00:00Z", "2026-12-02T11:01:00Z", 0)], {}, GPU,
                          "nvidia-a100-80gb", NOW)  # fmt: skip

    assert (used["gpu_type"], used["gpu_seconds"], used["cpu_seconds"]) == (None, 0.0, 480.0)
