"""kopf against the kmock emulator: FineTuneJobs become Jobs, and Job status flows back.

The tests play Kueue and the Job controller by patching the Job the operator created.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.operator.conftest import (
    NAMESPACE,
    Kube,
    Operator,
    custom_resource,
    finetune_spec,
    train_spec,
)

FTJ = f"/apis/tailor.dev/v1alpha1/namespaces/{NAMESPACE}/finetunejobs"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
SERVICES = f"/api/v1/namespaces/{NAMESPACE}/services"
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"

pytestmark = pytest.mark.asyncio


def _exists(obj: dict[str, Any] | None) -> bool:
    return obj is not None


def _phase(phase: str) -> Any:
    return lambda obj: obj is not None and (obj.get("status") or {}).get("phase") == phase


async def _submit(kube: Kube, name: str, **spec: Any) -> dict[str, Any]:
    body = custom_resource("FineTuneJob", name, finetune_spec(**spec), NAMESPACE)
    await kube.create(FTJ, body)
    job = await kube.wait_for(f"{JOBS}/{name}", _exists)
    assert job is not None
    return job


async def test_a_finetunejob_becomes_a_suspended_job_in_the_team_queue(
    kube: Kube, running_operator: Operator
) -> None:
    job = await _submit(kube, "ft-queue")

    assert job["spec"]["suspend"] is True  # Kueue admits it by the team's quota
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "tailor"
    assert job["metadata"]["labels"]["tailor.dev/job-id"] == "job-42"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "FineTuneJob"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == [
        "tailor", "train", "run", "/spec/spec.json", "--job-id", "job-42"
    ]  # fmt: skip
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    configmap = await kube.get(f"{CONFIGMAPS}/ft-queue-spec")
    assert configmap is not None
    assert json.loads(configmap["data"]["spec.json"])["dataset_id"] == "ds-1"
    ftj = await kube.wait_for(f"{FTJ}/ft-queue", _phase("Queued"))
    assert ftj is not None
    assert ftj["status"]["reason"] == "WaitingForQuota"


async def test_job_status_flows_to_the_finetunejob_and_the_api(
    kube: Kube, running_operator: Operator
) -> None:
    await _submit(kube, "ft-flow")
    await kube.wait_for(f"{FTJ}/ft-flow", _phase("Queued"))

    # Kueue admits the workload; the Job controller starts a pod.
    await kube.patch(f"{JOBS}/ft-flow", {"spec": {"suspend": False}, "status": {"active": 1}})
    running = await kube.wait_for(f"{FTJ}/ft-flow", _phase("Running"))
    complete = {"type": "Complete", "status": "True", "reason": "CompletionsReached"}
    await kube.patch(
        f"{JOBS}/ft-flow",
        {"status": {"active": 0, "Succeeded": 1, "conditions": [complete]}},
    )
    done = await kube.wait_for(f"{FTJ}/ft-flow", _phase("Succeeded"))

    assert running is not None and done is not None
    conditions = {c["type"]: c["status"] for c in done["status"]["conditions"]}
    assert conditions == {
        "Admitted": "True",
        "Suspended": "False",
        "Running": "False",
        "Succeeded": "True",
        "Failed": "False",
    }
    assert running_operator.sink.phases("ft-flow") == ["Queued", "Running", "Succeeded"]
    assert {r.job_id for r in running_operator.sink.reports} == {"job-42"}


async def test_a_spec_error_exit_code_fails_the_job_with_a_reason(
    kube: Kube, running_operator: Operator
) -> None:
    await _submit(kube, "ft-bad")
    failed = {
        "type": "Failed",
        "status": "True",
        "reason": "PodFailurePolicy",
        "message": "Container trainer for pod search/ft-bad-x failed with exit code 3 "
        "matching FailJob rule at index 0",
    }
    await kube.patch(f"{JOBS}/ft-bad", {"spec": {"suspend": False}})
    await kube.patch(f"{JOBS}/ft-bad", {"status": {"Failed": 1, "conditions": [failed]}})

    ftj = await kube.wait_for(f"{FTJ}/ft-bad", _phase("Failed"))
    assert ftj is not None
    assert ftj["status"]["reason"] == "InvalidSpec"
    report = running_operator.sink.reports[-1]
    assert report.phase == "Failed"
    assert report.reason is not None and report.reason.startswith("InvalidSpec: ")


async def test_an_invalid_spec_fails_without_creating_a_job(
    kube: Kube, running_operator: Operator
) -> None:
    # QLoRA trains in one process: two nodes is a spec error the CRD schema cannot see.
    spec = finetune_spec(resources={"nodes": 2, "gpusPerNode": 8})
    await kube.create(FTJ, custom_resource("FineTuneJob", "ft-invalid", spec, NAMESPACE))

    ftj = await kube.wait_for(f"{FTJ}/ft-invalid", _phase("Failed"))
    assert ftj is not None
    assert "method 'full'" in ftj["status"]["message"]
    assert await kube.get(f"{JOBS}/ft-invalid") is None
    assert running_operator.sink.phases("ft-invalid") == ["Failed"]


async def test_a_two_node_job_gets_rendezvous_through_a_headless_service(
    kube: Kube, running_operator: Operator
) -> None:
    job = await _submit(
        kube,
        "ft-fsdp",
        train=train_spec(method="full"),
        resources={"nodes": 2, "gpusPerNode": 8},
    )

    service = await kube.get(f"{SERVICES}/ft-fsdp-nodes")
    assert service is not None and service["spec"]["clusterIP"] == "None"
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == "ft-fsdp-nodes"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["MASTER_ADDR"] == "ft-fsdp-0.ft-fsdp-nodes"
    assert env["WORLD_SIZE"] == "16"
    command = pod["containers"][0]["command"]
    assert command[:5] == ["torchrun", "--nnodes", "2", "--nproc-per-node", "8"]
    assert "$(NODE_RANK)" in command


async def test_suspending_a_finetunejob_suspends_its_job(
    kube: Kube, running_operator: Operator
) -> None:
    await _submit(kube, "ft-pause")
    await kube.patch(f"{JOBS}/ft-pause", {"spec": {"suspend": False}, "status": {"active": 1}})
    await kube.wait_for(f"{FTJ}/ft-pause", _phase("Running"))

    await kube.patch(f"{FTJ}/ft-pause", {"spec": {"suspend": True}})

    job = await kube.wait_for(f"{JOBS}/ft-pause", lambda o: bool(o and o["spec"]["suspend"]))
    assert job is not None
    ftj = await kube.wait_for(f"{FTJ}/ft-pause", _phase("Suspended"))
    assert ftj is not None


async def test_deleting_a_finetunejob_cleans_up_and_reports_the_cancel(
    kube: Kube, running_operator: Operator
) -> None:
    await _submit(kube, "ft-gone", train=train_spec(method="full"), resources={"nodes": 2})
    await kube.wait_for(f"{FTJ}/ft-gone", _phase("Queued"))

    await kube.delete(f"{FTJ}/ft-gone")

    await kube.wait_for(f"{FTJ}/ft-gone", lambda o: o is None)
    assert await kube.get(f"{JOBS}/ft-gone") is None
    assert await kube.get(f"{SERVICES}/ft-gone-nodes") is None
    assert await kube.get(f"{CONFIGMAPS}/ft-gone-spec") is None
    assert running_operator.sink.phases("ft-gone") == ["Queued", "Cancelled"]
