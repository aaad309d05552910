"""FineTuneJob → ConfigMap, Job or JobSet: pure builders, no cluster."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from tailor_operator import training
from tailor_operator.config import GpuType, OperatorConfig
from tailor_operator.pods import UnknownGpuType
from tailor_operator.resources import FineTuneJobSpec

from tailor.security import job_token
from tailor.stages.train.protocol import (
    EVENTS_URL_ENV,
    EXIT_SPEC_ERROR,
    JOB_TOKEN_ENV,
    events_path,
)
from tailor.stages.train.sizing import SizingError
from tests.charts.validation import validate_manifest
from tests.operator.conftest import NAMESPACE, finetune_spec, train_spec

FULL = train_spec(method="full")


def make_finetune(
    name: str = "ft-1", config: OperatorConfig | None = None, **spec: Any
) -> training.FineTune:
    parsed = FineTuneJobSpec.model_validate(finetune_spec(**spec))
    return training.finetune(name, NAMESPACE, "uid-1", parsed, config or OperatorConfig())


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    if job["kind"] == "JobSet":
        job = job["spec"]["replicatedJobs"][0]["template"]
    return job["spec"]["template"]["spec"]


def _env(job: dict[str, Any]) -> dict[str, Any]:
    env = _pod(job)["containers"][0]["env"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in env}


def _h100_rdma(operator_config: OperatorConfig) -> OperatorConfig:
    """A config with an H100 pool: 8 GPUs per node, EFA devices, NCCL settings, topology."""
    h100 = GpuType(
        flavor="h100",
        gpusPerNode=8,
        cpuPerGpu=12,
        memoryPerGpuGi=120,
        sharedMemory="256Gi",
        rdmaResources={"vpc.amazonaws.com/efa": 32},
        podAnnotations={"k8s.v1.cni.cncf.io/networks": "efa"},
        ncclEnv={"FI_PROVIDER": "efa", "NCCL_SOCKET_IFNAME": "eth0"},
        topologyLevel="cloud.provider.com/topology-block",
    )
    types = {**operator_config.gpuTypes, "h100": h100}
    return operator_config.model_copy(update={"gpuTypes": types})


def test_every_manifest_validates_against_kubernetes_1_31(
    operator_config: OperatorConfig,
) -> None:
    rdma = _h100_rdma(operator_config)
    for ft in (
        make_finetune(config=operator_config),
        make_finetune(config=operator_config, train=FULL, resources={"gpus": 4}),
        make_finetune(config=rdma, train=FULL, resources={"gpus": 32, "gpuType": "h100"}),
    ):
        for manifest in training.build_training(ft, operator_config):
            validate_manifest(manifest)  # the JobSet against JobSet's own CRD


def test_single_gpu_job_runs_the_entrypoint_directly_so_exit_codes_reach_the_policy(
    operator_config: OperatorConfig,
) -> None:
    job = training.build_job(make_finetune(), operator_config)

    container = _pod(job)["containers"][0]
    assert container["command"] == training.entrypoint(make_finetune())
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["values"] == [EXIT_SPEC_ERROR]
    assert job["spec"]["completionMode"] == "NonIndexed"


def test_one_node_with_several_gpus_runs_torchrun_standalone(
    operator_config: OperatorConfig,
) -> None:
    ft = make_finetune(train=FULL, resources={"gpus": 4})

    command = _pod(training.build_job(ft, operator_config))["containers"][0]["command"]

    assert command[:8] == [
        *training.TORCHRUN, "--standalone", "--nnodes", "1", "--nproc-per-node", "4"
    ]  # fmt: skip
    assert command[-6:] == training.entrypoint(ft)


@pytest.mark.slow
def test_a_spec_error_under_torchrun_exits_3_as_one_process_would(tmp_path: Path) -> None:
    """The pod's own command on 2 CPU processes: torchrun alone would exit 1 and be retried."""
    ft = make_finetune(train=FULL, resources={"gpus": 2})
    spec = tmp_path / training.SPEC_FILE
    spec.write_text(json.dumps({"team": "payments", "no_such_field": 1}))
    command = _pod(training.build_job(ft, OperatorConfig()))["containers"][0]["command"]
    command = [str(spec) if arg.startswith(training.SPEC_DIR) else arg for arg in command]

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)

    assert done.returncode == EXIT_SPEC_ERROR, done.stderr[-2000:]
    assert '"kind": "SpecError"' in done.stdout


def test_disruptions_are_retried_without_counting_and_retries_are_bounded(
    operator_config: OperatorConfig,
) -> None:
    job = training.build_job(make_finetune(resources={"maxRetries": 5}), operator_config)

    ignore = job["spec"]["podFailurePolicy"]["rules"][1]
    assert ignore == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert job["spec"]["backoffLimit"] == 5
    assert _pod(job)["restartPolicy"] == "Never"


def test_gpus_land_on_the_a100_pool_by_default(operator_config: OperatorConfig) -> None:
    job = training.build_job(make_finetune(resources={"gpusPerNode": 1}), operator_config)

    pod = _pod(job)
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    resources = pod["containers"][0]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 1


def test_an_unknown_gpu_type_is_an_error_naming_the_configured_pools(
    operator_config: OperatorConfig,
) -> None:
    with pytest.raises(UnknownGpuType, match="nvidia-a100-80gb"):
        make_finetune(config=operator_config, resources={"gpuType": "h100"})


def test_pods_get_shared_memory_credentials_and_a_locked_down_context(
    operator_config: OperatorConfig,
) -> None:
    job = training.build_job(make_finetune(resources={"sharedMemory": "32Gi"}), operator_config)

    pod = _pod(job)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "32Gi"}
    container = pod["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "tailor-object-store"}}]
    assert pod["serviceAccountName"] == "tailor-workload"  # the team's identity
    assert _env(job)["TAILOR_OBJECT_STORE_URL"] == "s3://tailor-artifacts/prod"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False


def test_the_job_is_queued_in_the_team_localqueue_and_owned_by_the_finetunejob(
    operator_config: OperatorConfig,
) -> None:
    job = training.build_job(make_finetune(), operator_config)

    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "tailor"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "tailor-training"
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("FineTuneJob", "ft-1", "uid-1")


def test_without_kueue_the_job_runs_unless_suspended(operator_config: OperatorConfig) -> None:
    config = operator_config.model_copy(
        update={"kueue": operator_config.kueue.model_copy(update={"enabled": False})}
    )

    running = training.build_job(make_finetune(), config)
    paused = training.build_job(make_finetune(suspend=True), config)

    assert running["spec"]["suspend"] is False
    assert "kueue.x-k8s.io/queue-name" not in running["metadata"]["labels"]
    assert paused["spec"]["suspend"] is True


def test_a_finished_workload_is_left_to_kubernetes_to_delete_after_a_week(
    operator_config: OperatorConfig,
) -> None:
    kept = operator_config.model_copy(update={"finishedTtlSeconds": None})
    big = make_finetune("ft-big", train=FULL, resources={"gpus": 16})

    job = training.build_job(make_finetune(), operator_config)
    jobset = training.build_jobset(big, operator_config)

    assert job["spec"]["ttlSecondsAfterFinished"] == jobset["spec"]["ttlSecondsAfterFinished"]
    assert job["spec"]["ttlSecondsAfterFinished"] == 7 * 24 * 3600
    assert "ttlSecondsAfterFinished" not in training.build_job(make_finetune(), kept)["spec"]


def test_sixteen_gpus_on_eight_gpu_nodes_become_a_two_node_jobset(
    operator_config: OperatorConfig,
) -> None:
    ft = make_finetune("ft-big", train=FULL, resources={"gpus": 16})

    manifests = training.build_training(ft, operator_config)

    assert [m["kind"] for m in manifests] == ["ConfigMap", "JobSet"]
    jobset = manifests[1]
    replicated = jobset["spec"]["replicatedJobs"][0]
    assert replicated["replicas"] == 2  # one single-pod Job per node
    assert replicated["template"]["spec"]["completions"] == 1
    env = _env(jobset)
    assert env["MASTER_ADDR"] == "ft-big-node-0-0.ft-big-nodes"
    assert env["WORLD_SIZE"] == "16"
    assert env["NNODES"] == "2"
    assert env["NODE_RANK"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['jobset.sigs.k8s.io/job-index']"
    )
    network = jobset["spec"]["network"]
    assert network == {
        "enableDNSHostnames": True,
        "subdomain": "ft-big-nodes",
        "publishNotReadyAddresses": True,
    }
    command = _pod(jobset)["containers"][0]["command"]
    assert command[:7] == [*training.TORCHRUN, "--nnodes", "2", "--nproc-per-node", "8"]
    assert _pod(jobset)["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 8
    labels = jobset["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "tailor"
    assert jobset["spec"]["suspend"] is True


def test_a_gang_restarts_together_fails_fast_on_a_spec_error_and_ignores_preemption(
    operator_config: OperatorConfig,
) -> None:
    ft = make_finetune(train=FULL, resources={"gpus": 16, "maxRetries": 2})

    jobset = training.build_jobset(ft, operator_config)

    policy = jobset["spec"]["failurePolicy"]
    assert policy["maxRestarts"] == 2
    assert policy["restartStrategy"] == "BlockingRecreate"  # all nodes, none left waiting
    spec_error, disrupted = policy["rules"]
    assert spec_error["action"] == "FailJobSet"
    assert spec_error["onJobFailureMessagePatterns"] == ["exit code 3 matching FailJob"]
    assert disrupted["action"] == "RestartJobSetAndIgnoreMaxRestarts"
    assert disrupted["onJobFailureMessagePatterns"] == ["DisruptionTarget"]
    node_job = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]
    assert node_job["backoffLimit"] == 0  # no per-node retry: the gang restarts
    rules = node_job["podFailurePolicy"]["rules"]
    assert rules[0]["onExitCodes"]["values"] == [EXIT_SPEC_ERROR]
    assert [r["action"] for r in rules] == ["FailJob", "FailJob"]
    assert rules[1]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]


def test_resources_scale_with_the_gpus_from_the_gpu_type(
    operator_config: OperatorConfig,
) -> None:
    config = _h100_rdma(operator_config)
    four = make_finetune(config=config, train=FULL, resources={"gpus": 4, "gpuType": "h100"})
    one = make_finetune(config=config, resources={"gpus": 1, "gpuType": "h100"})

    small = _pod(training.build_job(one, config))["containers"][0]["resources"]
    big_pod = _pod(training.build_job(four, config))
    big = big_pod["containers"][0]["resources"]

    assert (small["requests"]["cpu"], small["requests"]["memory"]) == ("12", "120Gi")
    assert (big["requests"]["cpu"], big["requests"]["memory"]) == ("48", "480Gi")
    assert big["limits"]["memory"] == "480Gi"
    assert big["limits"]["nvidia.com/gpu"] == 4
    volumes = {v["name"]: v for v in big_pod["volumes"]}
    assert volumes["dshm"]["emptyDir"]["sizeLimit"] == "256Gi"
    assert "vpc.amazonaws.com/efa" not in big["limits"]  # one node needs no RDMA


def test_multi_node_pods_get_rdma_devices_annotations_nccl_and_topology(
    operator_config: OperatorConfig,
) -> None:
    config = _h100_rdma(operator_config)
    ft = make_finetune(config=config, train=FULL, resources={"gpus": 32, "gpuType": "h100"})

    jobset = training.build_jobset(ft, config)

    template = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    resources = template["spec"]["containers"][0]["resources"]
    assert jobset["spec"]["replicatedJobs"][0]["replicas"] == 4
    assert resources["requests"]["vpc.amazonaws.com/efa"] == 32
    assert resources["limits"]["vpc.amazonaws.com/efa"] == 32
    assert resources["requests"]["cpu"] == "96"
    annotations = template["metadata"]["annotations"]
    assert annotations["k8s.v1.cni.cncf.io/networks"] == "efa"
    assert annotations["kueue.x-k8s.io/podset-preferred-topology"] == (
        "cloud.provider.com/topology-block"
    )
    env = _env(jobset)
    assert (env["FI_PROVIDER"], env["NCCL_SOCKET_IFNAME"]) == ("efa", "eth0")


@pytest.mark.parametrize(
    ("resources", "reason"),
    [
        ({"gpus": 12}, "12 GPUs do not fill whole nvidia-a100-80gb nodes of 8 GPUs"),
        ({"nodes": 1, "gpusPerNode": 16}, "gpusPerNode 16 exceeds the 8 GPUs"),
        ({"gpus": 1024}, "at most 64 nodes"),
    ],
)
def test_a_request_the_gpu_type_cannot_hold_is_refused_with_the_reason(
    resources: dict[str, Any], reason: str
) -> None:
    with pytest.raises(SizingError, match=reason):
        make_finetune(train=FULL, resources=resources)


def test_the_spec_file_is_the_trainspec_with_the_world_size(
    operator_config: OperatorConfig,
) -> None:
    ft = make_finetune(train=FULL, resources={"nodes": 2, "gpusPerNode": 4})

    configmap = training.build_configmap(ft)

    written = json.loads(configmap["data"]["spec.json"])
    assert written["num_processes"] == 8
    assert written["adapter_name"] == "search-style"


def test_long_names_are_shortened_to_valid_dns_labels(operator_config: OperatorConfig) -> None:
    ft = make_finetune("a" * 80 + "-finetune")

    names = [m["metadata"]["name"] for m in training.build_training(ft, operator_config)]

    assert all(len(name) <= 52 for name in names)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"resources": {"nodes": 2}}, "method 'full'"),
        ({"resources": {"gpus": 8}}, "method 'full'"),
        ({"resources": {"gpus": 8, "nodes": 1}}, "not both"),
        ({"team": "other"}, "differs from train.team"),
        ({"resources": {"cpu": "lots"}}, "resources.cpu"),
    ],
)
def test_specs_the_cluster_cannot_run_are_rejected_with_the_field(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        FineTuneJobSpec.model_validate(finetune_spec(**spec))


def test_with_cloud_identity_pods_carry_no_keys_and_run_as_the_team_account(
    operator_config: OperatorConfig,
) -> None:
    store = operator_config.objectStore.model_copy(update={"teamCredentials": "serviceAccount"})
    config = operator_config.model_copy(update={"objectStore": store})

    pod = _pod(training.build_job(make_finetune(config=config), config))

    assert pod["containers"][0]["envFrom"] == []
    assert pod["serviceAccountName"] == "tailor-workload"
    assert pod["automountServiceAccountToken"] is False


def test_the_pods_post_events_with_a_token_from_the_jobs_own_secret(
    operator_config: OperatorConfig,
) -> None:
    config = operator_config.model_copy(
        update={"jobTokenKey": SecretStr("key"), "apiUrl": "http://tailor-api.tailor.svc:80"}
    )
    ft = make_finetune("ft-events", config=config, jobId="job-7")

    configmap, secret, job = training.build_training(ft, config)

    token = base64.b64decode(secret["data"][JOB_TOKEN_ENV]).decode()
    assert token == job_token("key", "job-7")
    assert token not in json.dumps(job)  # only a reference to the Secret is in the Job
    assert _env(job)[EVENTS_URL_ENV] == "http://tailor-api.tailor.svc:80" + events_path("job-7")
    assert _env(job)[JOB_TOKEN_ENV] == {
        "secretKeyRef": {"name": secret["metadata"]["name"], "key": JOB_TOKEN_ENV}
    }
    assert secret["metadata"]["ownerReferences"] == configmap["metadata"]["ownerReferences"]
    validate_manifest(secret)


def test_without_a_job_token_key_pods_report_no_events(operator_config: OperatorConfig) -> None:
    config = operator_config.model_copy(update={"apiUrl": "http://tailor-api.tailor.svc:80"})

    manifests = training.build_training(make_finetune(config=config), config)

    assert [m["kind"] for m in manifests] == ["ConfigMap", "Job"]
    assert EVENTS_URL_ENV not in _env(manifests[1])
