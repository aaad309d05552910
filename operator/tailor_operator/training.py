"""FineTuneJob → ConfigMap (the spec), batch/v1 Job and, for several nodes, a headless Service.

Pure: a FineTune and the operator config in, manifests out.

One node runs one pod. Several nodes run an Indexed Job (one pod per node, completion
index = node rank) whose pods find node 0 through a headless Service:
`MASTER_ADDR=<job>-0.<service>`. torchrun starts one process per GPU.

Exit codes the Job's podFailurePolicy knows:
- `EXIT_SPEC_ERROR` (3, from `tailor.stages.train.protocol`): the training entrypoint found the
  spec unusable (dataset missing, unknown base model, bad LoRA targets). Retrying cannot
  help: the Job fails at once.
- a pod disrupted by the cluster (preemption, node drain, eviction: the DisruptionTarget
  condition) is retried without counting against `maxRetries`;
- any other failure (OOM kill 137, NCCL timeout, node loss) counts against `maxRetries`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tailor.stages.train.protocol import EXIT_SPEC_ERROR, entrypoint_args
from tailor_operator import naming, pods
from tailor_operator.config import GpuType, OperatorConfig
from tailor_operator.resources import API_VERSION, FineTuneJobSpec

SPEC_DIR = "/spec"
SPEC_FILE = "spec.json"
CONTAINER = "trainer"


@dataclass(frozen=True)
class FineTune:
    """A FineTuneJob as the builders need it: identity plus validated spec."""

    name: str
    namespace: str
    uid: str
    spec: FineTuneJobSpec

    @property
    def job_id(self) -> str:
        """The Tailor job id (the resource name when the API gave none)."""
        return self.spec.jobId or self.name

    @property
    def multi_node(self) -> bool:
        """Whether the job spans several nodes (indexed Job + rendezvous Service)."""
        return self.spec.resources.nodes > 1


def job_name(name: str) -> str:
    """Name of the batch/v1 Job of a FineTuneJob."""
    return naming.child_name(name)


def service_name(name: str) -> str:
    """Name of the headless rendezvous Service of a multi-node FineTuneJob."""
    return naming.child_name(name, "-nodes")


def configmap_name(name: str) -> str:
    """Name of the ConfigMap holding the TrainSpec."""
    return naming.child_name(name, "-spec")


def _labels(ft: FineTune) -> dict[str, str]:
    return naming.labels(
        "trainer",
        ft.spec.team,
        **{naming.FINETUNE_LABEL: ft.name, naming.JOB_ID_LABEL: ft.job_id},
    )


def _metadata(
    ft: FineTune, name: str, extra_labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": ft.namespace,
        "labels": {**_labels(ft), **(extra_labels or {})},
        "ownerReferences": [naming.owner_reference(API_VERSION, "FineTuneJob", ft.name, ft.uid)],
    }


def local_queue(config: OperatorConfig) -> str:
    """The LocalQueue every team namespace has (made by the Team handler)."""
    return config.kueue.localQueueName


def spec_json(ft: FineTune) -> str:
    """The TrainSpec the entrypoint reads, with its process count set to the world size."""
    train = ft.spec.train.model_copy(update={"num_processes": ft.spec.world_size()})
    return train.model_dump_json(indent=2)


def build_configmap(ft: FineTune) -> dict[str, Any]:
    """The TrainSpec as a file, mounted read-only at /spec/spec.json."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(ft, configmap_name(ft.name)),
        "data": {SPEC_FILE: spec_json(ft)},
    }


def build_service(ft: FineTune, config: OperatorConfig) -> dict[str, Any]:
    """Headless Service giving each node's pod a DNS name (`<job>-<rank>.<service>`)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(ft, service_name(ft.name)),
        "spec": {
            "clusterIP": "None",
            # Rendezvous happens before any pod is ready.
            "publishNotReadyAddresses": True,
            "selector": {naming.FINETUNE_LABEL: naming.label_value(ft.name)},
            "ports": [{"name": "rendezvous", "port": config.masterPort, "protocol": "TCP"}],
        },
    }


def entrypoint(ft: FineTune) -> list[str]:
    """The training entrypoint, the same command `tailor` runs on a laptop."""
    return ["tailor", *entrypoint_args(f"{SPEC_DIR}/{SPEC_FILE}", ft.job_id)]


def command(ft: FineTune) -> list[str]:
    """The container command: the entrypoint alone for one process, else under torchrun.

    One process runs without torchrun so its exit code (3 for a bad spec) reaches the
    podFailurePolicy; torchrun reports any worker failure as 1.
    """
    gpus = max(ft.spec.resources.gpusPerNode, 1)
    if ft.spec.world_size() == 1:
        return entrypoint(ft)
    if not ft.multi_node:
        return ["torchrun", "--standalone", "--nnodes", "1", "--nproc-per-node", str(gpus),
                "--no-python", *entrypoint(ft)]  # fmt: skip
    return [
        "torchrun",
        "--nnodes", str(ft.spec.resources.nodes),
        "--nproc-per-node", str(gpus),
        "--node-rank", "$(NODE_RANK)",
        "--master-addr", "$(MASTER_ADDR)",
        "--master-port", "$(MASTER_PORT)",
        "--no-python",
        *entrypoint(ft),
    ]  # fmt: skip


def rendezvous_env(ft: FineTune, config: OperatorConfig) -> list[dict[str, Any]]:
    """MASTER_ADDR/PORT, NNODES, WORLD_SIZE and NODE_RANK (from the completion index)."""
    if not ft.multi_node:
        return []
    master = f"{job_name(ft.name)}-0.{service_name(ft.name)}"
    index = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    return [
        {"name": "MASTER_ADDR", "value": master},
        {"name": "MASTER_PORT", "value": str(config.masterPort)},
        {"name": "NNODES", "value": str(ft.spec.resources.nodes)},
        {"name": "WORLD_SIZE", "value": str(ft.spec.world_size())},
        {"name": "NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": index}}},
    ]


def pod_failure_policy() -> dict[str, Any]:
    """Fail at once on a spec error; retry disruptions for free; count everything else."""
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": [EXIT_SPEC_ERROR],
                },
            },
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }


def _container(ft: FineTune, config: OperatorConfig, pool: GpuType) -> dict[str, Any]:
    res = ft.spec.resources
    scratch_mounts = pods.scratch_volumes()[1]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": config.images.trainer,
        "imagePullPolicy": config.images.pullPolicy,
        "command": command(ft),
        "env": [
            {"name": "TAILOR_JOB_ID", "value": ft.job_id},
            *pods.object_store_env(config),
            *pods.cache_env(),
            *rendezvous_env(ft, config),
        ],
        "envFrom": [pods.object_store_secret_ref(config)],
        "resources": pods.compute_resources(res.cpu, res.memory, res.gpusPerNode, pool),
        "volumeMounts": [
            {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
            {"name": "dshm", "mountPath": "/dev/shm"},
            *scratch_mounts,
        ],
        "securityContext": pods.container_security(),
    }
    if ft.multi_node:
        container["ports"] = [{"name": "rendezvous", "containerPort": config.masterPort}]
    return container


def _pod_spec(ft: FineTune, config: OperatorConfig) -> dict[str, Any]:
    res = ft.spec.resources
    _, pool = pods.gpu_type(config, res.gpuType)
    scratch = pods.scratch_volumes()[0]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",  # podFailurePolicy needs it; the Job owns retries
        "automountServiceAccountToken": False,
        "securityContext": pods.pod_security(),
        **pods.placement(res.gpusPerNode, pool),
        "containers": [_container(ft, config, pool)],
        "volumes": [
            {"name": "spec", "configMap": {"name": configmap_name(ft.name)}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": res.sharedMemory}},
            *scratch,
        ],
    }
    if ft.multi_node:
        spec["subdomain"] = service_name(ft.name)
    return spec


def build_job(ft: FineTune, config: OperatorConfig) -> dict[str, Any]:
    """The batch/v1 Job; with Kueue it starts suspended and Kueue admits it by quota."""
    res = ft.spec.resources
    queue = {naming.QUEUE_LABEL: local_queue(config)} if config.kueue.enabled else {}
    spec: dict[str, Any] = {
        "suspend": config.kueue.enabled or ft.spec.suspend,
        "backoffLimit": res.maxRetries,
        "completions": res.nodes,
        "parallelism": res.nodes,
        "completionMode": "Indexed" if ft.multi_node else "NonIndexed",
        "podFailurePolicy": pod_failure_policy(),
        "template": {"metadata": {"labels": _labels(ft)}, "spec": _pod_spec(ft, config)},
    }
    if res.maxRuntimeSeconds:
        spec["activeDeadlineSeconds"] = res.maxRuntimeSeconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(ft, job_name(ft.name), queue),
        "spec": spec,
    }


def build_training(ft: FineTune, config: OperatorConfig) -> list[dict[str, Any]]:
    """Everything a FineTuneJob needs, in creation order (the Job last: it mounts the rest)."""
    manifests = [build_configmap(ft)]
    if ft.multi_node:
        manifests.append(build_service(ft, config))
    manifests.append(build_job(ft, config))
    return manifests
