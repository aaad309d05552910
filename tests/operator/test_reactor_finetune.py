"""kopf against the kmock emulator: FineTuneJobs become Jobs or JobSets, and status flows back.

The tests play Kueue, the Job and the JobSet controller by patching what the operator created.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tailor_operator.config import OperatorConfig
from tailor_operator.sink import RecordingSink

from tests.operator.conftest import (
    NAMESPACE,
    Kube,
    Operator,
    custom_resource,
    finetune_spec,
    operator_against,
    train_spec,
)

FTJ = f"/apis/tailor.dev/v1alpha1/namespaces/{NAMESPACE}/finetunejobs"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
JOBSETS = f"/apis/jobset.x-k8s.io/v1alpha2/namespaces/{NAMESPACE}/jobsets"
WORKLOADS = f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{NAMESPACE}/workloads"
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
    spec = finetune_spec(resources={"gpus": 16})
    await kube.create(FTJ, custom_resource("FineTuneJob", "ft-invalid", spec, NAMESPACE))

    ftj = await kube.wait_for(f"{FTJ}/ft-invalid", _phase("Failed"))
    assert ftj is not None
    assert "method 'full'" in ftj["status"]["message"]
    assert await kube.get(f"{JOBS}/ft-invalid") is None
    assert running_operator.sink.phases("ft-invalid") == ["Failed"]


async def test_sixteen_gpus_become_one_two_node_jobset_whose_status_flows_back(
    kube: Kube, running_operator: Operator
) -> None:
    body = custom_resource(
        "FineTuneJob", "ft-fsdp", finetune_spec(train=train_spec(method="full"),
                                                resources={"gpus": 16}), NAMESPACE
    )  # fmt: skip
    await kube.create(FTJ, body)
    jobset = await kube.wait_for(f"{JOBSETS}/ft-fsdp", _exists)
    assert jobset is not None

    assert await kube.get(f"{JOBS}/ft-fsdp") is None  # a gang, not an Indexed Job
    assert jobset["spec"]["replicatedJobs"][0]["replicas"] == 2
    assert jobset["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "tailor"
    pod = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["MASTER_ADDR"] == "ft-fsdp-node-0-0.ft-fsdp-nodes"
    assert env["WORLD_SIZE"] == "16"
    assert pod["containers"][0]["resources"]["requests"]["cpu"] == "64"  # 8 GPUs x 8 cores
    # The phase comes from the JobSet's events and the layout from the create handler's patch:
    # two writers, so the layout may land a moment after the phase.
    queued = await kube.wait_for(
        f"{FTJ}/ft-fsdp", lambda o: o is not None and _phase("Queued")(o) and "nodes" in o["status"]
    )
    assert queued is not None
    assert (queued["status"]["nodes"], queued["status"]["gpusPerNode"]) == (2, 8)

    # Kueue admits the gang; the JobSet controller runs both nodes.
    running = {"replicatedJobsStatus": [{"name": "node", "active": 2, "ready": 2,
               "succeeded": 0, "failed": 0, "suspended": 0}]}  # fmt: skip
    await kube.patch(f"{JOBSETS}/ft-fsdp", {"spec": {"suspend": False}, "status": running})
    ftj = await kube.wait_for(f"{FTJ}/ft-fsdp", _phase("Running"))
    assert ftj is not None and ftj["status"]["message"].startswith("2/2 node(s) active")
    failed = {
        "type": "Failed",
        "status": "True",
        "reason": "FailJobSetFailurePolicyAction",
        "message": "applying FailJobSet failure policy action (first failed job: ft-fsdp-node-1)",
    }
    await kube.patch(f"{JOBSETS}/ft-fsdp", {"status": {"conditions": [failed]}})

    ftj = await kube.wait_for(f"{FTJ}/ft-fsdp", _phase("Failed"))
    assert ftj is not None and ftj["status"]["reason"] == "InvalidSpec"
    assert running_operator.sink.phases("ft-fsdp") == ["Queued", "Running", "Failed"]


async def test_a_request_the_gpu_type_cannot_hold_is_refused_with_the_reason(
    kube: Kube, running_operator: Operator
) -> None:
    spec = finetune_spec(train=train_spec(method="full"), resources={"gpus": 12})
    await kube.create(FTJ, custom_resource("FineTuneJob", "ft-odd", spec, NAMESPACE))

    ftj = await kube.wait_for(f"{FTJ}/ft-odd", _phase("Failed"))
    assert ftj is not None
    assert "12 GPUs do not fill whole nvidia-a100-80gb nodes of 8 GPUs" in ftj["status"]["message"]
    assert await kube.get(f"{JOBSETS}/ft-odd") is None
    assert await kube.get(f"{JOBS}/ft-odd") is None
    assert running_operator.sink.phases("ft-odd") == ["Failed"]


async def _kueue_workload(kube: Kube, job: dict[str, Any]) -> str:
    """Play Kueue: the Workload it makes for a queued Job, owned by the Job."""
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
             "uid": job["metadata"]["uid"], "controller": True}  # fmt: skip
    name = f"job-{job['metadata']['name']}-1a2b3"
    workload = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {"name": name, "namespace": NAMESPACE, "ownerReferences": [owner]},
        "spec": {"active": True, "queueName": "tailor", "podSets": []},
    }
    await kube.create(WORKLOADS, workload)
    return f"{WORKLOADS}/{name}"


async def test_pause_deactivates_the_kueue_workload_and_resume_reactivates_it(
    kube: Kube, running_operator: Operator
) -> None:
    job = await _submit(kube, "ft-pause")
    workload = await _kueue_workload(kube, job)
    await kube.patch(f"{JOBS}/ft-pause", {"spec": {"suspend": False}, "status": {"active": 1}})
    await kube.wait_for(f"{FTJ}/ft-pause", _phase("Running"))

    await kube.patch(f"{FTJ}/ft-pause", {"spec": {"suspend": True}})

    paused = await kube.wait_for(workload, lambda o: bool(o) and o["spec"]["active"] is False)
    assert paused is not None
    # Kueue evicts the deactivated Workload and suspends its Job; the phase follows.
    await kube.patch(f"{JOBS}/ft-pause", {"spec": {"suspend": True}, "status": {"active": 0}})
    ftj = await kube.wait_for(f"{FTJ}/ft-pause", _phase("Suspended"))
    assert ftj is not None
    job_now = await kube.get(f"{JOBS}/ft-pause")
    assert job_now is not None and job_now["spec"]["suspend"] is True

    await kube.patch(f"{FTJ}/ft-pause", {"spec": {"suspend": False}})

    resumed = await kube.wait_for(workload, lambda o: bool(o) and o["spec"]["active"] is True)
    assert resumed is not None


async def test_without_kueue_pause_suspends_the_jobset_itself(
    kube: Kube, operator_config: OperatorConfig
) -> None:
    kueue = operator_config.kueue.model_copy(update={"enabled": False})
    config = operator_config.model_copy(update={"kueue": kueue})
    spec = finetune_spec(train=train_spec(method="full"), resources={"gpus": 16})
    async with operator_against(kube, config, RecordingSink()):
        await kube.create(FTJ, custom_resource("FineTuneJob", "ft-solo", spec, NAMESPACE))
        jobset = await kube.wait_for(f"{JOBSETS}/ft-solo", _exists)
        assert jobset is not None and jobset["spec"]["suspend"] is False
        await kube.wait_for(
            f"{FTJ}/ft-solo", lambda o: bool(o and (o.get("status") or {}).get("nodes"))
        )

        await kube.patch(f"{FTJ}/ft-solo", {"spec": {"suspend": True}})

        paused = await kube.wait_for(
            f"{JOBSETS}/ft-solo", lambda o: bool(o and o["spec"]["suspend"])
        )
    assert paused is not None


async def test_deleting_a_finetunejob_cleans_up_and_reports_the_cancel(
    kube: Kube, running_operator: Operator
) -> None:
    spec = finetune_spec(train=train_spec(method="full"), resources={"gpus": 16})
    await kube.create(FTJ, custom_resource("FineTuneJob", "ft-gone", spec, NAMESPACE))
    await kube.wait_for(f"{JOBSETS}/ft-gone", _exists)
    await kube.wait_for(f"{FTJ}/ft-gone", _phase("Queued"))

    await kube.delete(f"{FTJ}/ft-gone")

    await kube.wait_for(f"{FTJ}/ft-gone", lambda o: o is None)
    assert await kube.get(f"{JOBSETS}/ft-gone") is None
    assert await kube.get(f"{CONFIGMAPS}/ft-gone-spec") is None
    assert running_operator.sink.phases("ft-gone") == ["Queued", "Cancelled"]
