"""FineTuneJob → ConfigMap, Job, Service: pure builders, no cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from tailor_operator import training
from tailor_operator.config import OperatorConfig
from tailor_operator.pods import UnknownGpuType
from tailor_operator.resources import FineTuneJobSpec

from tailor.stages.train.protocol import EXIT_SPEC_ERROR
from tests.charts.validation import validate_manifest
from tests.operator.conftest import NAMESPACE, finetune_spec, train_spec


def make_finetune(name: str = "ft-1", **spec: Any) -> training.FineTune:
    parsed = FineTuneJobSpec.model_validate(finetune_spec(**spec))
    return training.FineTune(name, NAMESPACE, "uid-1", parsed)


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def _env(job: dict[str, Any]) -> dict[str, Any]:
    env = _pod(job)["containers"][0]["env"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in env}


def test_every_manifest_validates_against_kubernetes_1_31(
    operator_config: OperatorConfig,
) -> None:
    for ft in (
        make_finetune(),
        make_finetune(train=train_spec(method="full"), resources={"nodes": 4, "gpusPerNode": 8}),
    ):
        for manifest in training.build_training(ft, operator_config):
            validate_manifest(manifest)


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
    ft = make_finetune(train=train_spec(method="full"), resources={"gpusPerNode": 4})

    command = _pod(training.build_job(ft, operator_config))["containers"][0]["command"]

    assert command[:6] == ["torchrun", "--standalone", "--nnodes", "1", "--nproc-per-node", "4"]
    assert command[-6:] == training.entrypoint(ft)


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
        training.build_job(make_finetune(resources={"gpuType": "h100"}), operator_config)


def test_pods_get_shared_memory_credentials_and_a_locked_down_context(
    operator_config: OperatorConfig,
) -> None:
    job = training.build_job(make_finetune(resources={"sharedMemory": "32Gi"}), operator_config)

    pod = _pod(job)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "32Gi"}
    container = pod["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "tailor-object-store"}}]
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


def test_multi_node_jobs_rendezvous_on_node_zero_of_an_indexed_job(
    operator_config: OperatorConfig,
) -> None:
    ft = make_finetune(
        "ft-big", train=train_spec(method="full"), resources={"nodes": 4, "gpusPerNode": 8}
    )

    job = training.build_job(ft, operator_config)
    service = training.build_service(ft, operator_config)

    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    env = _env(job)
    assert env["MASTER_ADDR"] == f"ft-big-0.{service['metadata']['name']}"
    assert env["MASTER_PORT"] == "29500"
    assert env["WORLD_SIZE"] == "32"
    assert env["NODE_RANK"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    assert _pod(job)["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_the_spec_file_is_the_trainspec_with_the_world_size(
    operator_config: OperatorConfig,
) -> None:
    ft = make_finetune(train=train_spec(method="full"), resources={"nodes": 2, "gpusPerNode": 4})

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
        ({"team": "other"}, "differs from train.team"),
        ({"resources": {"cpu": "lots"}}, "resources.cpu"),
    ],
)
def test_specs_the_cluster_cannot_run_are_rejected_with_the_field(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        FineTuneJobSpec.model_validate(finetune_spec(**spec))
