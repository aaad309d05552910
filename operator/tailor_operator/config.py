"""The operator's configuration: what the platform admin chose in the Helm values.

The chart renders it as JSON into a ConfigMap mounted at the path in
`TAILOR_OPERATOR_CONFIG`; every field has a default so the operator also starts bare.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

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
    """Where datasets and adapters live, and the Secret holding the credentials."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(default="", description="s3://bucket/prefix (or file:// for a shared volume).")
    endpointUrl: str | None = Field(default=None, description="S3 API endpoint (MinIO, Ceph).")
    region: str = "us-east-1"
    secretName: str = Field(
        default="tailor-object-store",
        description="Secret in each team namespace with TAILOR_S3_ACCESS_KEY_ID and "
        "TAILOR_S3_SECRET_ACCESS_KEY (the Team handler puts it there).",
    )
    sourceSecretName: str = Field(default="tailor-s3", description="The platform's Secret to copy.")
    sourceSecretNamespace: str = Field(default="tailor", description="Namespace of that Secret.")


class Kueue(BaseModel):
    """Kueue integration: per-team ClusterQueues in one cohort that may borrow."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    cohort: str = "tailor"
    localQueueName: str = "tailor"
    clusterQueuePrefix: str = "tailor-"


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
    masterPort: int = Field(default=29500, ge=1, le=65535, description="torchrun rendezvous port.")
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
    servingPort: int = Field(
        default=8000, ge=1, le=65535, description="Port the endpoints listen on."
    )
    apiUrl: str | None = Field(default=None, description="Tailor API; status is reported there.")
    kubeServer: str | None = Field(
        default=None, description="Kubernetes API URL; unset uses in-cluster or kubeconfig login."
    )


def load_config(path: str | Path | None = None) -> OperatorConfig:
    """Read the config file (JSON or YAML), then the environment's overrides (API URL, kube
    server) and the endpoint-token key (a Secret's, never in the config file)."""
    path = path or os.environ.get("TAILOR_OPERATOR_CONFIG")
    data: dict[str, Any] = {}
    if path:
        text = Path(path).read_text()
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text) or {}
    if os.environ.get("TAILOR_API_URL"):
        data["apiUrl"] = os.environ["TAILOR_API_URL"]
    if os.environ.get("TAILOR_ENDPOINT_TOKEN_KEY"):
        data["endpointTokenKey"] = os.environ["TAILOR_ENDPOINT_TOKEN_KEY"]
    if os.environ.get("TAILOR_OPERATOR_KUBE_SERVER"):
        data["kubeServer"] = os.environ["TAILOR_OPERATOR_KUBE_SERVER"]
    return OperatorConfig.model_validate(data)


@lru_cache
def get_config() -> OperatorConfig:
    """The operator's config, read once; tests pass their own through kopf's memo."""
    return load_config()
