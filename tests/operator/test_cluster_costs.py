"""Cost accounting through the cluster executor: the operator reports what the fine-tune's
pods used (their start and end times x their GPUs), the API prices it at the GPU type's
price, and a team past its budget's hard limit cannot start another one.

As in test_cluster_executor: the API, the worker function and kopf run for real against the
kmock emulator; the test plays Kueue and the kubelet (it admits the Job, creates the pod the
Job controller would, with the times the kubelet would report, and ends the Job).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tailor.services.finetunes.run import run_finetune_job
from tests.operator.conftest import Kube, Platform
from tests.operator.test_cluster_executor import _job_state, _team_with_dataset, _train_spec

A100 = "nvidia-a100-80gb"


def _pod(uid: str, namespace: str, start: str, end: str) -> dict[str, object]:
    """The pod of the fine-tune's Job as the kubelet reports it after its container ended."""
    resources = {"requests": {"cpu": "8"}, "limits": {"nvidia.com/gpu": 1}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{uid}-0-abcde",
            "namespace": namespace,
            "labels": {"tailor.dev/finetunejob": uid, "batch.kubernetes.io/job-name": uid},
        },
        "spec": {"containers": [{"name": "trainer", "image": "t", "resources": resources}]},
        "status": {
            "phase": "Failed",
            "startTime": start,
            "containerStatuses": [
                {"name": "trainer", "state": {"terminated": {"exitCode": 1, "finishedAt": end}}}
            ],
        },
    }


@pytest.mark.asyncio
async def test_the_pods_gpu_time_is_priced_and_the_hard_limit_then_refuses_training(
    kube: Kube, platform: Platform, operator: None, kubeconfig: Path
) -> None:
    slug, auth, namespace = _team_with_dataset(platform)
    admin = {"Authorization": f"Bearer {platform.admin_token}"}
    price = platform.client.put(f"/v1/admin/gpu-prices/{A100}",
                                json={"price_per_gpu_hour": 4.0}, headers=admin)  # fmt: skip
    assert price.status_code == 200, price.text
    body = _train_spec(slug, max_steps=1).model_dump(mode="json", exclude={"adapter_version"})
    started = platform.client.post(f"/v1/teams/{slug}/finetunes", json=body, headers=auth)
    assert started.status_code == 202, started.text
    uid = started.json()["id"]
    assert started.json()["estimate"]["gpu_type"] == A100  # the platform's default pool

    # The worker submits the FineTuneJob; the operator makes the Job; Kueue admits it.
    args = (platform.sessions, platform.store, platform.settings, uid)
    await asyncio.to_thread(run_finetune_job, *args)
    job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/{uid}"
    await kube.wait_for(job_path, lambda obj: obj is not None)
    await kube.patch(job_path, {"spec": {"suspend": False}, "status": {"active": 1}})
    await _job_state(platform, slug, auth, uid, "running")

    # Its one pod ran on one A100 for 30 minutes, then the Job failed.
    pod = _pod(uid, namespace, "2026-12-02T10:00:00Z", "2026-12-02T10:30:00Z")
    await kube.create(f"/api/v1/namespaces/{namespace}/pods", pod)
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    await kube.patch(job_path, {"status": {"active": 0, "failed": 1, "conditions": [failed]}})
    await _job_state(platform, slug, auth, uid, "failed")

    job = platform.client.get(f"/v1/teams/{slug}/jobs/{uid}", headers=auth).json()
    assert job["usage"] == {"gpu_type": A100, "gpus": 1, "gpu_seconds": 1800.0,
                            "cpu_seconds": 8 * 1800.0, "wall_seconds": 1800.0}  # fmt: skip
    assert (job["cost"]["gpu_hours"], job["cost"]["cost"]) == (0.5, 2.0)  # 0.5 h x 4.00 USD
    spend = platform.client.get(f"/v1/teams/{slug}/spend", headers=auth).json()
    assert [(k["kind"], k["cost"]) for k in spend["by_kind"]] == [("finetune", 2.0)]

    # A platform admin caps the team's month at 2.00: the next fine-tune is refused.
    limits = {"soft_limit": 1.0, "hard_limit": 2.0}
    budget = platform.client.put(f"/v1/teams/{slug}/budget", json=limits, headers=admin)
    assert budget.json()["state"] == "exhausted"
    refused = platform.client.post(f"/v1/teams/{slug}/finetunes", json=body, headers=auth)
    assert refused.status_code == 402
    assert "2.00 USD of its hard limit 2.00 USD" in refused.json()["detail"]
    listed = platform.client.get(f"/v1/teams/{slug}/finetunes", headers=auth).json()
    assert [j["id"] for j in listed["items"]] == [uid]  # nothing new was created
