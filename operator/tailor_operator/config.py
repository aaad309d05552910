"""The operator's configuration: what the platform admin chose in the Helm values.

The chart renders it as JSON into a ConfigMap mounted at the path in
`TAILOR_OPERATOR_CONFIG`; every field has a default so the operator also starts bare.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr


class GpuType(BaseModel):
    """A GPU pool: how pods land on its nodes and which Kueue flavor accounts for it."""

    model_config = ConfigDict(extra="forbid")

    resourceName: str = Field(default="nvidia.com/gpu", description="Extended resource of the GPU.")
    nodeSelector: dict[str, str] = Field(default_factory=dict, description="Pool's node labels.")
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="Tolerations for the pool's taints."
    )
    flavor: str = Field(description="Kueue ResourceFlavor of the pool.")
    gpusPerNode: int = Field(
        default=8,
        ge=1,
        le=64,
        description="GPUs on one node of the pool (a pod holds at most these).",
    )
    maxNodes: int = Field(
        default=64, ge=1, le=1024, description="Most nodes one fine-tune may span."
    )
    cpuPerGpu: float = Field(
        default=8, gt=0, description="CPU cores a training pod requests per GPU."
    )
    memoryPerGpuGi: int = Field(
        default=64,
        ge=1,
        description="Memory (GiB) a training pod requests and is capped at per GPU.",
    )
    sharedMemory: str = Field(
        default="16Gi", description="Size of /dev/shm of a training pod (data loaders, NCCL)."
    )
    rdmaResources: dict[str, int] = Field(
        default_factory=dict,
        description="Extra device resources per multi-node pod for RDMA, e.g. "
        "{'vpc.amazonaws.com/efa': 32} or {'rdma/ib': 1}; empty runs NCCL over TCP.",
    )
    podAnnotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations on every training pod of the pool (e.g. Multus networks).",
    )
    ncclEnv: dict[str, str] = Field(
        default_factory=dict,
        description="NCCL_* (and fabric) environment of every training pod, e.g. NCCL_IB_HCA.",
    )
    topologyLevel: str | None = Field(
        default=None,
        description="Node label of a Kueue Topology level a multi-node job should stay within "
        "(topology-aware scheduling); unset asks for none.",
    )
    topologyRequired: bool = Field(
        default=False,
        description="Require the topology level (else Kueue only prefers it).",
    )


def _a100() -> dict[str, GpuType]:
    return {
        "nvidia-a100-80gb": GpuType(
            nodeSelector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            flavor="a100-80gb",
        )
    }


class Images(BaseModel):
    """Container images of the workloads the operator creates."""

    model_config = ConfigDict(extra="forbid")

    trainer: str = "ghcr.io/tailor-dev/tailor-trainer:0.1.0"
    inference: str = "ghcr.io/tailor-dev/tailor-inference:0.1.0"
    vllm: str = "vllm/vllm-openai:v0.6.3"
    s3Sync: str = "amazon/aws-cli:2.17.0"
    pullPolicy: str = "IfNotPresent"


class ObjectStore(BaseModel):
    """Where datasets and adapters live, and how a team's pods get their own access to it.

    No platform-wide credential reaches a team namespace. Either each team's pods assume a
    cloud identity through the team's ServiceAccount (`serviceAccount`: IRSA, GKE Workload
    Identity; annotate it through `serviceAccountAnnotations`), or the admin puts a Secret
    with keys scoped to the team's prefix into the team namespace (`secret`).
    """

    model_config = ConfigDict(extra="forbid")

    url: str = Field(default="", description="s3://bucket/prefix (or file:// for a shared volume).")
    endpointUrl: str | None = Field(default=None, description="S3 API endpoint (MinIO, Ceph).")
    region: str = "us-east-1"
    teamCredentials: Literal["secret", "serviceAccount"] = Field(
        default="secret",
        description="secret: the admin provides `secretName` in each team namespace; "
        "serviceAccount: pods get credentials from the team ServiceAccount's cloud identity.",
    )
    secretName: str = Field(
        default="tailor-object-store",
        description="Secret the admin puts in each team namespace (teamCredentials=secret) with "
        "TAILOR_S3_ACCESS_KEY_ID and TAILOR_S3_SECRET_ACCESS_KEY for that team's prefix only.",
    )
    serviceAccountName: str = Field(
        default="tailor-workload",
        description="ServiceAccount the operator makes in each team namespace; its pods run as it.",
    )
    serviceAccountAnnotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations of that ServiceAccount; `{team}` in a value becomes the slug, "
        "e.g. eks.amazonaws.com/role-arn: arn:aws:iam::1:role/tailor-{team}.",
    )


class Kueue(BaseModel):
    """Kueue integration: per-team ClusterQueues in one cohort that may borrow."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    cohort: str = "tailor"
    localQueueName: str = "tailor"
    clusterQueuePrefix: str = "tailor-"
    trainingPriorityClass: str = Field(
        default="tailor-training",
        description="WorkloadPriorityClass of fine-tunes (below serving, above evaluation).",
    )
    servingPriorityClass: str = Field(
        default="tailor-serving", description="WorkloadPriorityClass of endpoint Deployments."
    )


def _private_ranges() -> list[str]:
    # Cluster, node and VPC addresses (the platform's database, broker, other teams) and the
    # link-local range with the cloud metadata address 169.254.169.254.
    return ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"]


class TeamEgress(BaseModel):
    """Where team pods may connect: DNS, the object store, the API; nothing else."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Default-deny egress in team namespaces.")
    dnsNamespace: str = Field(default="kube-system", description="Namespace of cluster DNS.")
    dnsPodLabels: dict[str, str] = Field(
        default_factory=lambda: {"k8s-app": "kube-dns"}, description="Labels of the DNS pods."
    )
    apiPodLabels: dict[str, str] = Field(
        default_factory=lambda: {
            "app.kubernetes.io/name": "tailor",
            "app.kubernetes.io/component": "api",
        },
        description="Labels of the API pods in the platform namespace (internal routes).",
    )
    apiPort: int = Field(default=8000, ge=1, le=65535, description="Port of the API pods.")
    objectStorePorts: list[int] = Field(
        default_factory=lambda: [443],
        description="Ports of the object store (and model hub) outside the cluster.",
    )
    objectStoreCidrs: list[str] = Field(
        default_factory=lambda: ["0.0.0.0/0"],
        description="Addresses of the object store outside the cluster (S3's, or everything).",
    )
    blockedCidrs: list[str] = Field(
        default_factory=_private_ranges,
        description="Never reachable through objectStoreCidrs: cluster/VPC ranges, metadata.",
    )
    extra: list[dict[str, Any]] = Field(
        default_factory=list,
        description="More NetworkPolicy egress rules, e.g. to an in-cluster MinIO.",
    )


class TeamAccess(BaseModel):
    """The operator's own rights inside team namespaces, granted per namespace.

    Its cluster-wide role may only read workloads; writing them (Jobs, JobSets,
    Deployments, Secrets, ...) comes from a RoleBinding it makes in each team namespace to
    `clusterRole`, so it can change nothing in any other namespace.
    """

    model_config = ConfigDict(extra="forbid")

    clusterRole: str = Field(description="ClusterRole with the operator's namespaced rights.")
    serviceAccount: str = Field(description="The operator's ServiceAccount.")
    serviceAccountNamespace: str = Field(description="Its namespace (the platform's).")


class OperatorConfig(BaseModel):
    """Everything the operator's decisions depend on besides the custom resource."""

    model_config = ConfigDict(extra="forbid")

    namespacePrefix: str = "tailor-team-"
    platformNamespace: str = Field(
        default="tailor", description="Namespace of the API gateway; team endpoints accept it."
    )
    gatewayPodLabels: dict[str, str] = Field(
        default_factory=lambda: {"app.kubernetes.io/component": "gateway"},
        description="Labels of the inference gateway's pods (platform namespace): the only "
        "pods team endpoints accept traffic from.",
    )
    defaultGpuType: str = "nvidia-a100-80gb"
    gpuTypes: dict[str, GpuType] = Field(default_factory=_a100)
    images: Images = Field(default_factory=Images)
    objectStore: ObjectStore = Field(default_factory=ObjectStore)
    kueue: Kueue = Field(default_factory=Kueue)
    teamEgress: TeamEgress = Field(default_factory=TeamEgress)
    teamAccess: TeamAccess | None = Field(
        default=None,
        description="Bind the operator's namespaced role in each team namespace (the chart "
        "sets it with rbac.create); unset: its rights come from elsewhere.",
    )
    masterPort: int = Field(default=29500, ge=1, le=65535, description="torchrun rendezvous port.")
    finishedTtlSeconds: int | None = Field(
        default=7 * 24 * 3600,
        ge=0,
        le=2**31 - 1,  # an int32 in the Job's schema
        description="How long a finished training Job or JobSet (and its pods, their logs) "
        "stays before Kubernetes deletes it; null keeps it. The FineTuneJob and the API's "
        "job record stay.",
    )
    endpointTokenSecretName: str = Field(
        default="tailor-endpoint-token",
        description="Secret in each team namespace whose TAILOR_SERVE_ENDPOINT_TOKEN the "
        "gateway sends to the team's Tailor-engine endpoint pods (they answer no one else); "
        "the Team handler makes it, one token per team derived from endpointTokenKey.",
    )
    endpointTokenKey: SecretStr | None = Field(
        default=None,
        description="The platform's endpoint-token key ($TAILOR_ENDPOINT_TOKEN_KEY, the "
        "gateway's too): each team's token is derived from it. Unset (an operator on its "
        "own), each team gets a random one that no gateway can send.",
    )
    jobTokenKey: SecretStr | None = Field(
        default=None,
        description="The platform's job-token key ($TAILOR_JOB_TOKEN_KEY, the API's too): "
        "each fine-tune's pods get a token derived from it (in the job's own Secret) and "
        "post their training events to the API's internal route with it. Unset, or no "
        "apiUrl: pods report no events, only their phase comes back.",
    )
    servingPort: int = Field(
        default=8000, ge=1, le=65535, description="Port the endpoints listen on."
    )
    apiUrl: str | None = Field(default=None, description="Tailor API; status is reported there.")
    kubeServer: str | None = Field(
        default=None, description="Kubernetes API URL; unset uses in-cluster or kubeconfig login."
    )


def load_config(path: str | Path | None = None) -> OperatorConfig:
    """Read the config file (JSON or YAML), then the environment's overrides (API URL, kube
    server) and the endpoint- and job-token keys (a Secret's, never in the config file)."""
    path = path or os.environ.get("TAILOR_OPERATOR_CONFIG")
    data: dict[str, Any] = {}
    if path:
        text = Path(path).read_text()
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text) or {}
    if os.environ.get("TAILOR_API_URL"):
        data["apiUrl"] = os.environ["TAILOR_API_URL"]
    if os.environ.get("TAILOR_ENDPOINT_TOKEN_KEY"):
        data["endpointTokenKey"] = os.environ["TAILOR_ENDPOINT_TOKEN_KEY"]
    if os.environ.get("TAILOR_JOB_TOKEN_KEY"):
        data["jobTokenKey"] = os.environ["TAILOR_JOB_TOKEN_KEY"]
    if os.environ.get("TAILOR_OPERATOR_KUBE_SERVER"):
        data["kubeServer"] = os.environ["TAILOR_OPERATOR_KUBE_SERVER"]
    return OperatorConfig.model_validate(data)


@lru_cache
def get_config() -> OperatorConfig:
    """The operator's config, read once; tests pass their own through kopf's memo."""
    return load_config()
