"""Pod pieces shared by training and serving: security, GPU placement, object-store access."""

from __future__ import annotations

from typing import Any

from tailor_operator import naming
from tailor_operator.config import GpuType, OperatorConfig

USER_ID = 1000  # the images' non-root user
# Key of the team's Secret holding the token the gateway sends to its endpoint pods.
ENDPOINT_TOKEN_KEY = "TAILOR_SERVE_ENDPOINT_TOKEN"


PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"


class UnknownGpuType(ValueError):
    """A resource names a GPU pool the admin did not configure."""


def pod_security() -> dict[str, Any]:
    """Pod-level security: non-root, a group for writable volumes, the runtime's seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "fsGroup": USER_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    """Container-level security: read-only root, no privilege escalation, no capabilities."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def gpu_type(config: OperatorConfig, name: str | None) -> tuple[str, GpuType]:
    """The GPU pool a resource asked for, or the platform default."""
    chosen = name or config.defaultGpuType
    if chosen not in config.gpuTypes:
        known = ", ".join(sorted(config.gpuTypes)) or "none"
        raise UnknownGpuType(f"gpuType {chosen!r} is not configured (the admin set up: {known})")
    return chosen, config.gpuTypes[chosen]


def compute_resources(
    cpu: str, memory: str, gpus: int, pool: GpuType | None
) -> dict[str, dict[str, Any]]:
    """Requests and limits: memory is capped, GPUs are whole devices (request == limit)."""
    requests: dict[str, Any] = {"cpu": cpu, "memory": memory}
    limits: dict[str, Any] = {"memory": memory}
    if gpus and pool is not None:
        requests[pool.resourceName] = gpus
        limits[pool.resourceName] = gpus
    return {"requests": requests, "limits": limits}


def placement(gpus: int, pool: GpuType | None) -> dict[str, Any]:
    """nodeSelector and tolerations that land GPU pods on their pool's nodes."""
    if not gpus or pool is None:
        return {}
    result: dict[str, Any] = {}
    if pool.nodeSelector:
        result["nodeSelector"] = dict(pool.nodeSelector)
    if pool.tolerations:
        result["tolerations"] = [dict(t) for t in pool.tolerations]
    return result


def object_store_env(config: OperatorConfig) -> list[dict[str, Any]]:
    """Non-secret object-store settings as the TAILOR_* variables tailor.config reads."""
    store = config.objectStore
    env = [
        {"name": "TAILOR_OBJECT_STORE_URL", "value": store.url},
        {"name": "TAILOR_S3_REGION", "value": store.region},
    ]
    if store.endpointUrl:
        env.append({"name": "TAILOR_S3_ENDPOINT_URL", "value": store.endpointUrl})
    return [e for e in env if e["value"]]


def object_store_env_from(config: OperatorConfig) -> list[dict[str, Any]]:
    """envFrom with the team's own keys, or nothing when its ServiceAccount is the identity."""
    if config.objectStore.teamCredentials != "secret":
        return []
    return [{"secretRef": {"name": config.objectStore.secretName}}]


def identity(config: OperatorConfig) -> dict[str, Any]:
    """Pod fields making it run as the team's ServiceAccount (its cloud identity, if any).

    No API token is mounted: IRSA and Workload Identity bring their own projected token or
    metadata server, and no Tailor pod talks to the Kubernetes API.
    """
    return {
        "serviceAccountName": config.objectStore.serviceAccountName,
        "automountServiceAccountToken": False,
    }


def scratch_volumes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Writable /tmp and cache dirs, since the root filesystem is read-only."""
    volumes = [
        {"name": "tmp", "emptyDir": {}},
        {"name": "cache", "emptyDir": {}},
    ]
    mounts = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "cache", "mountPath": "/cache"},
    ]
    return volumes, mounts


def cache_env() -> list[dict[str, Any]]:
    """Point every cache and the Tailor workspace at the writable cache volume."""
    return [
        {"name": "HOME", "value": "/cache/home"},
        {"name": "HF_HOME", "value": "/cache/huggingface"},
        {"name": "TAILOR_HOME", "value": "/cache/tailor"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]


def kueue_labels(config: OperatorConfig, priority_class: str) -> dict[str, str]:
    """The team's LocalQueue and a WorkloadPriorityClass, or nothing without Kueue.

    Training and serving both carry them, so Kueue accounts every GPU of the team in one
    place and preempts by class (serving above training).
    """
    if not config.kueue.enabled:
        return {}
    return {naming.QUEUE_LABEL: config.kueue.localQueueName, PRIORITY_LABEL: priority_class}
