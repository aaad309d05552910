"""FineTuneJob → ConfigMap (the spec) and a batch/v1 Job for one node, a JobSet for several.

Pure: a FineTune and the operator config in, manifests out.

Sizing: the fine-tune asks for N GPUs; `tailor.stages.train.sizing` chooses nodes x GPUs
per node from the GPU type, and CPU, memory, /dev/shm, RDMA devices, annotations and NCCL
environment come from the type, scaled by the node's GPUs.

One node runs one pod in a batch/v1 Job. Several nodes run a JobSet
(jobset.x-k8s.io/v1alpha2): one single-pod Job per node, node rank = the Job's index,
`MASTER_ADDR` = node 0's hostname on the JobSet's headless subdomain. The JobSet is a gang:
any node's failure recreates all of them (BlockingRecreate: no survivor waits in NCCL for
a replacement, none joins a stale rendezvous) up to `maxRetries` restarts.

Exit codes and failures the policies know:
- `EXIT_SPEC_ERROR` (3, from `tailor.stages.train.protocol`): the training entrypoint found the
  spec unusable (dataset missing, unknown base model, bad LoRA targets). Retrying cannot
  help: the Job (or JobSet) fails at once.
- a pod disrupted by the cluster (preemption, node drain, eviction: the DisruptionTarget
  condition) is retried without counting against `maxRetries`;
- any other failure (OOM kill 137, NCCL timeout, node loss) counts against `maxRetries`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from tailor.security import job_token
from tailor.stages.train.protocol import (
    EVENTS_URL_ENV,
    EXIT_SPEC_ERROR,
    JOB_TOKEN_ENV,
    entrypoint_args,
    events_path,
)
from tailor.stages.train.sizing import Layout, check_layout, plan_layout
from tailor_operator import naming, pods
from tailor_operator.config import GpuType, OperatorConfig
from tailor_operator.resources import API_VERSION, FineTuneJobSpec, TrainResources

SPEC_DIR = "/spec"
SPEC_FILE = "spec.json"
CONTAINER = "trainer"
JOBSET_API = "jobset.x-k8s.io/v1alpha2"
REPLICATED_JOB = "node"  # the JobSet's one replicated Job: one single-pod Job per node
_JOB_INDEX = "jobset.sigs.k8s.io/job-index"
_TOPOLOGY_REQUIRED = "kueue.x-k8s.io/podset-required-topology"
_TOPOLOGY_PREFERRED = "kueue.x-k8s.io/podset-preferred-topology"


@dataclass(frozen=True)
class FineTune:
    """A FineTuneJob as the builders need it: identity, validated spec, pool and layout."""

    name: str
    namespace: str
    uid: str
    spec: FineTuneJobSpec
    pool: GpuType
    layout: Layout

    @property
    def job_id(self) -> str:
        """The Tailor job id (the resource name when the API gave none)."""
        return self.spec.jobId or self.name

    @property
    def multi_node(self) -> bool:
        """Whether the job spans several nodes (a JobSet with a rendezvous)."""
        return self.layout.nodes > 1


def layout_for(res: TrainResources, pool_name: str, pool: GpuType) -> Layout:
    """Nodes x GPUs per node: chosen from the type for `gpus`, else checked against it.

    Raises SizingError (a ValueError) with the reason for a request the type cannot hold.
    """
    if res.gpus is None and res.nodes is not None and res.gpusPerNode is not None:
        layout = check_layout(res.nodes, res.gpusPerNode, pool.gpusPerNode, pool_name)
        if layout.nodes > pool.maxNodes:
            return plan_layout(layout.gpus, pool.gpusPerNode, pool_name, pool.maxNodes)
        return layout
    return plan_layout(res.total_gpus(), pool.gpusPerNode, pool_name, pool.maxNodes)


def finetune(
    name: str, namespace: str, uid: str, spec: FineTuneJobSpec, config: OperatorConfig
) -> FineTune:
    """A FineTune sized for its GPU type; UnknownGpuType or SizingError say why not."""
    pool_name, pool = pods.gpu_type(config, spec.resources.gpuType)
    return FineTune(name, namespace, uid, spec, pool, layout_for(spec.resources, pool_name, pool))


def job_name(name: str) -> str:
    """Name of the batch/v1 Job (one node) or JobSet (several) of a FineTuneJob."""
    return naming.child_name(name)


def service_name(name: str) -> str:
    """Name of the headless rendezvous subdomain (the JobSet controller makes the Service)."""
    return naming.child_name(name, "-nodes")


def configmap_name(name: str) -> str:
    """Name of the ConfigMap holding the TrainSpec."""
    return naming.child_name(name, "-spec")


def events_secret_name(name: str) -> str:
    """Name of the Secret holding the job's token (its pods post their events with it)."""
    return naming.child_name(name, "-events")


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
    train = ft.spec.train.model_copy(update={"num_processes": ft.layout.processes})
    return train.model_dump_json(indent=2)


def build_configmap(ft: FineTune) -> dict[str, Any]:
    """The TrainSpec as a file, mounted read-only at /spec/spec.json."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(ft, configmap_name(ft.name)),
        "data": {SPEC_FILE: spec_json(ft)},
    }


def build_events_secret(ft: FineTune, config: OperatorConfig) -> dict[str, Any] | None:
    """The job's token, which writes this job's events only; None where pods report none
    (no job-token key or no API URL configured)."""
    if config.jobTokenKey is None or not config.apiUrl:
        return None
    token = job_token(config.jobTokenKey.get_secret_value(), ft.job_id)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(ft, events_secret_name(ft.name)),
        "type": "Opaque",
        "data": {JOB_TOKEN_ENV: base64.b64encode(token.encode()).decode()},
    }


def events_env(ft: FineTune, config: OperatorConfig) -> list[dict[str, Any]]:
    """Where rank 0 posts the job's events, and the token from the job's Secret."""
    if config.jobTokenKey is None or not config.apiUrl:
        return []
    secret = {"name": events_secret_name(ft.name), "key": JOB_TOKEN_ENV}
    return [
        {"name": EVENTS_URL_ENV, "value": config.apiUrl.rstrip("/") + events_path(ft.job_id)},
        {"name": JOB_TOKEN_ENV, "valueFrom": {"secretKeyRef": secret}},
    ]


TORCHRUN = ["tailor", "train", "torchrun"]


def entrypoint(ft: FineTune) -> list[str]:
    """The training entrypoint, the same command `tailor` runs on a laptop."""
    return ["tailor", *entrypoint_args(f"{SPEC_DIR}/{SPEC_FILE}", ft.job_id)]


def command(ft: FineTune) -> list[str]:
    """The container command: the entrypoint alone for one process, else under torchrun.

    Several run under `tailor train torchrun`, which exits with the status the ranks chose
    (3 for a bad spec) where torchrun itself would report any failure as 1; so the spec error
    reaches the podFailurePolicy and the JobSet's failurePolicy in both layouts.
    """
    gpus = max(ft.layout.gpus_per_node, 1)
    if ft.layout.processes == 1:
        return entrypoint(ft)
    if not ft.multi_node:
        return [*TORCHRUN, "--standalone", "--nnodes", "1", "--nproc-per-node", str(gpus),
                "--no-python", *entrypoint(ft)]  # fmt: skip
    return [
        *TORCHRUN,
        "--nnodes", str(ft.layout.nodes),
        "--nproc-per-node", str(gpus),
        "--node-rank", "$(NODE_RANK)",
        "--master-addr", "$(MASTER_ADDR)",
        "--master-port", "$(MASTER_PORT)",
        "--no-python",
        *entrypoint(ft),
    ]  # fmt: skip


def master_address(ft: FineTune) -> str:
    """Node 0's pod hostname: `<jobset>-<replicatedJob>-<job index>-<pod index>.<subdomain>`."""
    return f"{job_name(ft.name)}-{REPLICATED_JOB}-0-0.{service_name(ft.name)}"


def rendezvous_env(ft: FineTune, config: OperatorConfig) -> list[dict[str, Any]]:
    """MASTER_ADDR/PORT, NNODES, WORLD_SIZE and NODE_RANK (the JobSet's job index)."""
    if not ft.multi_node:
        return []
    index = f"metadata.annotations['{_JOB_INDEX}']"
    return [
        {"name": "MASTER_ADDR", "value": master_address(ft)},
        {"name": "MASTER_PORT", "value": str(config.masterPort)},
        {"name": "NNODES", "value": str(ft.layout.nodes)},
        {"name": "WORLD_SIZE", "value": str(ft.layout.processes)},
        {"name": "NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": index}}},
    ]


def _spec_error_rule() -> dict[str, Any]:
    return {
        "action": "FailJob",
        "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [EXIT_SPEC_ERROR]},
    }


def pod_failure_policy() -> dict[str, Any]:
    """Fail at once on a spec error; retry disruptions for free; count everything else."""
    return {
        "rules": [
            _spec_error_rule(),
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }


def node_pod_failure_policy() -> dict[str, Any]:
    """A JobSet node's Job fails at once on anything; the JobSet decides what follows.

    Both rules end the Job with reason PodFailurePolicy; their messages ("... exit code 3
    matching FailJob rule" / "... condition DisruptionTarget matching FailJob rule") are
    what the JobSet's failurePolicy tells apart.
    """
    return {
        "rules": [
            _spec_error_rule(),
            {
                "action": "FailJob",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }


def jobset_failure_policy(res: TrainResources) -> dict[str, Any]:
    """Gang restarts: all nodes recreated together, `maxRetries` of them, preemption free.

    Rules match in order; a spec error comes first so a JobSet controller that ignores
    message patterns fails on a disruption rather than restarting a spec error forever.
    Anything unmatched (OOM, NCCL timeout, a lost node) restarts and counts.
    """
    return {
        "maxRestarts": res.maxRetries,
        "restartStrategy": "BlockingRecreate",
        "rules": [
            {
                "name": "SpecError",
                "action": "FailJobSet",
                "onJobFailureReasons": ["PodFailurePolicy"],
                "onJobFailureMessagePatterns": [f"exit code {EXIT_SPEC_ERROR} matching FailJob"],
            },
            {
                "name": "Disrupted",
                "action": "RestartJobSetAndIgnoreMaxRestarts",
                "onJobFailureReasons": ["PodFailurePolicy"],
                "onJobFailureMessagePatterns": ["DisruptionTarget"],
            },
        ],
    }


def node_resources(ft: FineTune) -> dict[str, dict[str, Any]]:
    """Requests and limits of one node's pod: CPU and memory scale with its GPUs.

    Explicit `cpu`/`memory` win; RDMA devices are added for multi-node pods only (a
    single node talks over NVLink/PCIe).
    """
    res, pool = ft.spec.resources, ft.pool
    gpus = ft.layout.gpus_per_node
    share = max(gpus, 1)
    cpu = res.cpu or _cores(pool.cpuPerGpu * share)
    memory = res.memory or f"{pool.memoryPerGpuGi * share}Gi"
    resources = pods.compute_resources(cpu, memory, gpus, pool)
    if ft.multi_node:
        for device, count in sorted(pool.rdmaResources.items()):
            resources["requests"][device] = count
            resources["limits"][device] = count
    return resources


def _cores(cores: float) -> str:
    return str(int(cores)) if float(cores).is_integer() else f"{round(cores * 1000)}m"


def _env(ft: FineTune, config: OperatorConfig) -> list[dict[str, Any]]:
    nccl = [{"name": k, "value": v} for k, v in sorted(ft.pool.ncclEnv.items())]
    return [
        {"name": "TAILOR_JOB_ID", "value": ft.job_id},
        *events_env(ft, config),
        *pods.object_store_env(config),
        *pods.cache_env(),
        *rendezvous_env(ft, config),
        *nccl,
    ]


def _container(ft: FineTune, config: OperatorConfig) -> dict[str, Any]:
    scratch_mounts = pods.scratch_volumes()[1]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": config.images.trainer,
        "imagePullPolicy": config.images.pullPolicy,
        "command": command(ft),
        "env": _env(ft, config),
        "envFrom": pods.object_store_env_from(config),
        "resources": node_resources(ft),
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
    scratch = pods.scratch_volumes()[0]
    shm = ft.spec.resources.sharedMemory or ft.pool.sharedMemory
    return {
        "restartPolicy": "Never",  # podFailurePolicy needs it; the Job owns retries
        **pods.identity(config),
        "securityContext": pods.pod_security(),
        **pods.placement(ft.layout.gpus_per_node, ft.pool),
        "containers": [_container(ft, config)],
        "volumes": [
            {"name": "spec", "configMap": {"name": configmap_name(ft.name)}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}},
            *scratch,
        ],
    }


def _pod_annotations(ft: FineTune) -> dict[str, str]:
    annotations = dict(ft.pool.podAnnotations)
    if ft.multi_node and ft.pool.topologyLevel:
        key = _TOPOLOGY_REQUIRED if ft.pool.topologyRequired else _TOPOLOGY_PREFERRED
        annotations[key] = ft.pool.topologyLevel
    return annotations


def _pod_template(ft: FineTune, config: OperatorConfig) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": _labels(ft)}
    annotations = _pod_annotations(ft)
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": _pod_spec(ft, config)}


def _suspended(ft: FineTune, config: OperatorConfig) -> bool:
    # With Kueue it starts suspended and Kueue admits it; pause goes through the Workload.
    return config.kueue.enabled or ft.spec.suspend


def build_job(ft: FineTune, config: OperatorConfig) -> dict[str, Any]:
    """The batch/v1 Job of a one-node fine-tune."""
    res = ft.spec.resources
    spec: dict[str, Any] = {
        "suspend": _suspended(ft, config),
        "backoffLimit": res.maxRetries,
        "completions": 1,
        "parallelism": 1,
        "completionMode": "NonIndexed",
        "podFailurePolicy": pod_failure_policy(),
        "template": _pod_template(ft, config),
    }
    if res.maxRuntimeSeconds:
        spec["activeDeadlineSeconds"] = res.maxRuntimeSeconds
    if config.finishedTtlSeconds is not None:
        spec["ttlSecondsAfterFinished"] = config.finishedTtlSeconds
    labels = pods.kueue_labels(config, config.kueue.trainingPriorityClass)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(ft, job_name(ft.name), labels),
        "spec": spec,
    }


def build_jobset(ft: FineTune, config: OperatorConfig) -> dict[str, Any]:
    """The JobSet of a multi-node fine-tune: one single-pod Job per node, one gang."""
    res = ft.spec.resources
    node_job: dict[str, Any] = {
        "backoffLimit": 0,  # the JobSet restarts the whole gang instead
        "completions": 1,
        "parallelism": 1,
        "podFailurePolicy": node_pod_failure_policy(),
        "template": _pod_template(ft, config),
    }
    if res.maxRuntimeSeconds:
        node_job["activeDeadlineSeconds"] = res.maxRuntimeSeconds
    labels = pods.kueue_labels(config, config.kueue.trainingPriorityClass)
    ttl = config.finishedTtlSeconds
    return {
        "apiVersion": JOBSET_API,
        "kind": "JobSet",
        "metadata": _metadata(ft, job_name(ft.name), labels),
        "spec": {
            **({"ttlSecondsAfterFinished": ttl} if ttl is not None else {}),  # its Jobs go with it
            "suspend": _suspended(ft, config),
            "network": {
                "enableDNSHostnames": True,
                "subdomain": service_name(ft.name),
                "publishNotReadyAddresses": True,  # rendezvous happens before readiness
            },
            "failurePolicy": jobset_failure_policy(res),
            "replicatedJobs": [
                {
                    "name": REPLICATED_JOB,
                    "replicas": ft.layout.nodes,
                    "template": {"metadata": {"labels": _labels(ft)}, "spec": node_job},
                }
            ],
        },
    }


def workload_kind(ft: FineTune) -> tuple[str, str]:
    """(apiVersion, kind) of what runs the training: a Job, or a JobSet for several nodes."""
    return (JOBSET_API, "JobSet") if ft.multi_node else ("batch/v1", "Job")


def build_training(ft: FineTune, config: OperatorConfig) -> list[dict[str, Any]]:
    """Everything a FineTuneJob needs, in creation order (the workload last: it mounts the rest)."""
    workload = build_jobset(ft, config) if ft.multi_node else build_job(ft, config)
    secret = build_events_secret(ft, config)
    return [build_configmap(ft), *([secret] if secret else []), workload]
