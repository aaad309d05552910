"""Tailor's custom resources as pydantic models: the source the CRDs are generated from.

`FineTuneJob.spec.train` is the TrainSpec and `InferenceEndpoint.spec` extends the
EndpointSpec, the same models the API, the CLI and the entrypoints use, so a spec that
the API accepts is one the cluster accepts. Outer fields follow Kubernetes' camelCase;
the stage specs keep their own names.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from tailor.stages.serve.spec import EndpointSpec
from tailor.stages.train.spec import TrainSpec

GROUP = "tailor.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Kubernetes' own pattern for resource.Quantity strings ("8", "500m", "64Gi", "1e3").
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
GPU_TYPE = r"^[a-z0-9][a-z0-9.-]{0,62}$"
TEAM_SLUG = r"^[a-z0-9][a-z0-9-]{0,50}$"  # "tailor-team-" + slug stays a 63-char namespace

_CONDITIONS_LIST: JsonDict = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


class Condition(BaseModel):
    """One observed aspect of a resource's state, in Kubernetes' condition format."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="Condition type, e.g. Admitted, Running, Succeeded, Failed.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(
        default=None, description="CamelCase reason for the last transition."
    )
    message: str | None = Field(default=None, description="What happened, for a person to act on.")
    lastTransitionTime: str | None = Field(
        default=None,
        description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )


# --- FineTuneJob -------------------------------------------------------------------------


class TrainResources(BaseModel):
    """The compute a fine-tune asks for; Kueue admits it against the team's quota.

    Ask for `gpus` and the platform chooses nodes x GPUs per node from the GPU type (16
    GPUs on 8-GPU nodes: 2 nodes); `nodes` with `gpusPerNode` pins the layout instead.
    CPU, memory and /dev/shm follow the GPU type unless given.
    """

    model_config = ConfigDict(extra="forbid")

    gpus: int | None = Field(
        default=None,
        ge=0,
        le=4096,
        description="GPUs in all (torchrun processes); the platform picks nodes x GPUs per node "
        "from the GPU type. Unset: nodes x gpusPerNode, else one GPU.",
    )
    gpusPerNode: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="GPUs per node, with nodes, to pin the layout (instead of gpus).",
    )
    nodes: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Nodes, with gpusPerNode, to pin the layout (instead of gpus).",
    )
    gpuType: str | None = Field(
        default=None,
        pattern=GPU_TYPE,
        description="GPU pool from the admin's gpuTypes (node size, CPU and memory per GPU, "
        "node selector, Kueue flavor); unset uses the platform default.",
    )
    cpu: str | None = Field(
        default=None,
        pattern=QUANTITY,
        description="CPU request per node; unset scales with the node's GPUs (cpuPerGpu).",
    )
    memory: str | None = Field(
        default=None,
        pattern=QUANTITY,
        description="Memory per node; unset scales with the node's GPUs (memoryPerGpuGi).",
    )
    sharedMemory: str | None = Field(
        default=None, pattern=QUANTITY, description="Size of /dev/shm; unset: the type's."
    )
    maxRetries: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Restarts after infrastructure failures (Job backoffLimit, or the "
        "JobSet's maxRestarts for several nodes); preemptions do not count.",
    )
    maxRuntimeSeconds: int | None = Field(
        default=None, ge=60, description="Wall-clock limit for the whole job; unset means none."
    )

    @model_validator(mode="after")
    def _one_way_to_size(self) -> TrainResources:
        if self.gpus is not None and (self.nodes is not None or self.gpusPerNode is not None):
            raise ValueError("give gpus, or nodes with gpusPerNode, not both")
        if self.gpusPerNode == 0 and (self.nodes or 1) > 1:
            raise ValueError("multi-node training needs GPUs: set gpusPerNode >= 1")
        return self

    def total_gpus(self) -> int:
        """GPUs asked for over all nodes."""
        if self.gpus is not None:
            return self.gpus
        per_node = 1 if self.gpusPerNode is None else self.gpusPerNode
        return (self.nodes or 1) * per_node

    def processes(self) -> int:
        """Training processes over all nodes (one per GPU, one on a CPU-only pod)."""
        return max(self.total_gpus(), 1)


class FineTuneJobSpec(BaseModel):
    """A fine-tune to run on the cluster: the TrainSpec plus where and how big."""

    model_config = ConfigDict(extra="forbid")

    team: str = Field(pattern=TEAM_SLUG, description="Team slug; must equal train.team.")
    jobId: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
        description="Tailor job id; status changes are reported to the API under it.",
    )
    train: TrainSpec = Field(description="What to train (the TrainSpec, unchanged).")
    resources: TrainResources = Field(
        default_factory=TrainResources, description="GPUs, nodes and memory."
    )
    suspend: bool = Field(
        default=False,
        description="Pause the job (with Kueue: its Workload is deactivated and the pods "
        "stop); false lets it queue again.",
    )

    @model_validator(mode="after")
    def _check_team_and_size(self) -> FineTuneJobSpec:
        if self.team != self.train.team:
            raise ValueError(f"team {self.team!r} differs from train.team {self.train.team!r}")
        if self.world_size() > 1 and self.train.method != "full":
            raise ValueError(
                f"{self.world_size()} processes need train.method 'full' (FSDP); "
                f"{self.train.method} trains on one GPU: ask for gpus=1"
            )
        return self

    def world_size(self) -> int:
        """Training processes over all nodes (one per GPU, one on a CPU-only node)."""
        return self.resources.processes()


FineTunePhase = Literal["Queued", "Suspended", "Running", "Succeeded", "Failed", "Cancelled"]


class FineTuneJobStatus(BaseModel):
    """What the operator observed of a fine-tune's Job(s)."""

    model_config = ConfigDict(extra="forbid")

    phase: FineTunePhase | None = Field(default=None, description="Where the job is in its life.")
    reason: str | None = Field(default=None, description="Why it is in that phase (CamelCase).")
    message: str | None = Field(default=None, description="Details a person can act on.")
    jobName: str | None = Field(
        default=None, description="The batch/v1 Job (one node) or JobSet (several) training."
    )
    nodes: int | None = Field(default=None, description="Nodes the platform chose.")
    gpusPerNode: int | None = Field(default=None, description="GPUs per node it chose.")
    startTime: str | None = Field(default=None, description="When the Job started (RFC 3339).")
    completionTime: str | None = Field(default=None, description="When it finished (RFC 3339).")
    reportedPhase: str | None = Field(
        default=None,
        description="Last phase the Tailor API acknowledged (re-sent until it matches).",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Admitted, Suspended, Running, Succeeded, Failed.",
        json_schema_extra=_CONDITIONS_LIST,
    )


# --- InferenceEndpoint -------------------------------------------------------------------


class ServingResources(BaseModel):
    """Compute per serving replica."""

    model_config = ConfigDict(extra="forbid")

    gpus: int = Field(
        default=0, ge=0, le=8, description="GPUs per replica (vllm needs at least 1)."
    )
    gpuType: str | None = Field(
        default=None, pattern=GPU_TYPE, description="GPU pool; unset uses the platform default."
    )
    cpu: str = Field(default="2", pattern=QUANTITY, description="CPU request per replica.")
    memory: str = Field(default="8Gi", pattern=QUANTITY, description="Memory request per replica.")


class Autoscaling(BaseModel):
    """Optional HorizontalPodAutoscaler for an endpoint."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=False, description="Create an autoscaling/v2 HPA.")
    minReplicas: int = Field(default=1, ge=1, le=64, description="Fewest replicas.")
    maxReplicas: int = Field(default=4, ge=1, le=64, description="Most replicas.")
    targetCPUUtilization: int = Field(
        default=70, ge=1, le=100, description="Average CPU utilisation (percent) the HPA aims for."
    )

    @model_validator(mode="after")
    def _check_range(self) -> Autoscaling:
        if self.minReplicas > self.maxReplicas:
            raise ValueError(f"minReplicas {self.minReplicas} > maxReplicas {self.maxReplicas}")
        return self


class InferenceEndpointSpec(EndpointSpec):
    """A team's endpoint on the cluster: the EndpointSpec plus pod resources and scaling."""

    model_config = ConfigDict(extra="forbid")

    resources: ServingResources = Field(
        default_factory=ServingResources, description="Compute per replica."
    )
    autoscaling: Autoscaling = Field(
        default_factory=Autoscaling, description="Optional horizontal autoscaling."
    )

    @model_validator(mode="after")
    def _check_backend(self) -> InferenceEndpointSpec:
        if self.backend == "vllm" and self.resources.gpus < 1:
            raise ValueError("backend 'vllm' needs resources.gpus >= 1")
        return self

    def endpoint(self) -> EndpointSpec:
        """The stage spec the serving engine reads (without the cluster-only fields)."""
        fields = set(EndpointSpec.model_fields)
        return EndpointSpec.model_validate(self.model_dump(include=fields))


class InferenceEndpointStatus(BaseModel):
    """What the operator observed of an endpoint's Deployment."""

    model_config = ConfigDict(extra="forbid")

    phase: Literal["Pending", "Progressing", "Ready", "Failed"] | None = Field(
        default=None, description="Ready once every replica loaded the model."
    )
    reason: str | None = Field(default=None, description="Why it is in that phase.")
    message: str | None = Field(default=None, description="Details a person can act on.")
    replicas: int | None = Field(default=None, description="Replicas the Deployment wants.")
    readyReplicas: int | None = Field(default=None, description="Replicas answering /readyz.")
    url: str | None = Field(default=None, description="In-cluster URL of the endpoint's Service.")
    specHash: str | None = Field(default=None, description="Hash of the spec the pods run.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Progressing.", json_schema_extra=_CONDITIONS_LIST
    )


# --- Team --------------------------------------------------------------------------------


class TeamQuota(BaseModel):
    """What the platform admin grants a team on the cluster."""

    model_config = ConfigDict(extra="forbid")

    gpus: int = Field(default=0, ge=0, le=4096, description="GPUs the team is guaranteed (Kueue).")
    gpuType: str | None = Field(
        default=None,
        pattern=GPU_TYPE,
        description="GPU pool the guarantee is in; unset means the platform default. Other "
        "pools can only be borrowed from.",
    )
    gpuBorrowingLimit: int = Field(
        default=0,
        ge=0,
        le=4096,
        description="Idle GPUs of other teams it may borrow in the cohort.",
    )
    cpu: str = Field(default="64", pattern=QUANTITY, description="CPU the team's pods may request.")
    memory: str = Field(
        default="512Gi", pattern=QUANTITY, description="Memory its pods may request."
    )
    pods: int = Field(default=64, ge=1, le=10000, description="Pods at once in the team namespace.")


class TeamSpec(BaseModel):
    """A tenant: the operator gives it a namespace, queues, a quota and network isolation."""

    model_config = ConfigDict(extra="forbid")

    displayName: str | None = Field(
        default=None, max_length=200, description="Name shown to people."
    )
    quota: TeamQuota = Field(default_factory=TeamQuota, description="The admin's quota.")


class TeamStatus(BaseModel):
    """What the operator made for a team."""

    model_config = ConfigDict(extra="forbid")

    phase: Literal["Pending", "Ready", "Failed"] | None = Field(
        default=None, description="Ready or not."
    )
    reason: str | None = Field(default=None, description="Why it is in that phase.")
    message: str | None = Field(default=None, description="Details a person can act on.")
    namespace: str | None = Field(default=None, description="The team's namespace.")
    clusterQueue: str | None = Field(default=None, description="The team's Kueue ClusterQueue.")
    localQueue: str | None = Field(
        default=None, description="LocalQueue its jobs are submitted to."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready.", json_schema_extra=_CONDITIONS_LIST
    )
