"""InferenceEndpoint → ConfigMap, Deployment, Service and (optionally) an HPA.

Pure: an Endpoint and the operator config in, manifests out.

Backend `tailor` runs one endpoint pod of the Tailor engine (`tailor serve-endpoint --config
…`), which pulls the base and adapters from the object store itself, has no database, and
answers only the gateway (the team's own token, from the Secret `endpointTokenSecretName` the
Team handler makes in the team namespace, since the team tokens it cannot check live in the
database). Backend `vllm` runs vLLM's OpenAI server
with LoRA enabled and the same token as its API key (VLLM_API_KEY); an init container copies
the adapters (and an s3:// base model) to a shared volume first. The pod template carries a
hash of what the pods run: for vLLM that includes the adapters, so promoting a version rolls
the pods over without downtime (maxUnavailable 0) — vLLM's runtime LoRA loading would need
the new version's files inside the running pod, which only the init container writes; the
Tailor engine re-reads its mounted spec and hot-loads a promoted version, so adapters and
limits are left out of its hash and a promotion only updates the ConfigMap. Readiness means
the model is loaded.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from tailor_operator import naming, pods
from tailor_operator.config import GpuType, OperatorConfig
from tailor_operator.resources import API_VERSION, InferenceEndpointSpec

CONFIG_DIR = "/config"
CONFIG_FILE = "endpoint.json"
ADAPTERS_DIR = "/adapters"
BASE_MODEL_DIR = "/models/base"
CONTAINER = "server"


class UnsupportedEndpoint(ValueError):
    """The endpoint cannot run with this platform's configuration."""


@dataclass(frozen=True)
class Endpoint:
    """An InferenceEndpoint as the builders need it: identity plus validated spec."""

    name: str
    namespace: str
    uid: str
    spec: InferenceEndpointSpec


def workload_name(name: str) -> str:
    """Name shared by the endpoint's Deployment, Service and HPA."""
    return naming.child_name(name)


def configmap_name(name: str) -> str:
    """Name of the ConfigMap holding the EndpointSpec."""
    return naming.child_name(name, "-config")


def url(ep: Endpoint) -> str:
    """In-cluster URL of the endpoint (what the API gateway routes a team's calls to)."""
    return f"http://{workload_name(ep.name)}.{ep.namespace}.svc.cluster.local"


def endpoint_json(ep: Endpoint) -> str:
    """The EndpointSpec the serving engine reads."""
    return ep.spec.endpoint().model_dump_json(indent=2)


# What a Tailor engine pod picks up from its mounted spec without a restart.
HOT_FIELDS = frozenset({"adapters", "limits", "context_tokens"})


def spec_hash(ep: Endpoint) -> str:
    """Hash of what the pods run: a change rolls them (for `tailor`, not a promotion)."""
    hot = HOT_FIELDS if ep.spec.backend == "tailor" else frozenset()
    return naming.spec_hash(ep.spec.model_dump_json(exclude=set(hot)))


def _selector(ep: Endpoint) -> dict[str, str]:
    return {naming.ENDPOINT_LABEL: naming.label_value(ep.name)}


def _metadata(ep: Endpoint, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": ep.namespace,
        "labels": naming.labels("inference", ep.spec.team, **{naming.ENDPOINT_LABEL: ep.name}),
        "ownerReferences": [
            naming.owner_reference(API_VERSION, "InferenceEndpoint", ep.name, ep.uid)
        ],
    }


def build_configmap(ep: Endpoint) -> dict[str, Any]:
    """The EndpointSpec as a file, mounted read-only at /config/endpoint.json."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(ep, configmap_name(ep.name)),
        "data": {CONFIG_FILE: endpoint_json(ep)},
    }


def _probes(path: str, port: str) -> dict[str, Any]:
    # Loading a large base model takes minutes: the startup probe allows 30 of them,
    # readiness then gates traffic, liveness only checks that the server still listens.
    return {
        "startupProbe": {
            "httpGet": {"path": path, "port": port},
            "periodSeconds": 10,
            "failureThreshold": 180,
        },
        "readinessProbe": {
            "httpGet": {"path": path, "port": port},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 20, "failureThreshold": 3},
    }


def serve_command(config: OperatorConfig) -> list[str]:
    """The Tailor engine's endpoint pod command (`tailor serve-endpoint`)."""
    config_file = f"{CONFIG_DIR}/{CONFIG_FILE}"
    port = str(config.servingPort)
    return [
        "tailor", "serve-endpoint", "--config", config_file, "--host", "0.0.0.0", "--port", port
    ]  # fmt: skip


def endpoint_token_env(
    config: OperatorConfig, name: str = pods.ENDPOINT_TOKEN_KEY
) -> dict[str, Any]:
    """The team's gateway token as env `name`, from its Secret in the team namespace (the pod
    will not start without it: an endpoint pod answering anyone would serve the team's
    adapters to anyone)."""
    ref = {"name": config.endpointTokenSecretName, "key": pods.ENDPOINT_TOKEN_KEY}
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _tailor_container(ep: Endpoint, config: OperatorConfig, pool: GpuType | None) -> dict[str, Any]:
    res = ep.spec.resources
    return {
        "name": CONTAINER,
        "image": config.images.inference,
        "imagePullPolicy": config.images.pullPolicy,
        "command": serve_command(config),
        "env": [*pods.object_store_env(config), *pods.cache_env(), endpoint_token_env(config)],
        "envFrom": pods.object_store_env_from(config),
        "ports": [{"name": "http", "containerPort": config.servingPort}],
        "resources": pods.compute_resources(res.cpu, res.memory, res.gpus, pool),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            *pods.scratch_volumes()[1],
        ],
        "securityContext": pods.container_security(),
        **_probes("/readyz", "http"),
    }


def _s3_location(config: OperatorConfig, key: str) -> str:
    parsed = urlparse(config.objectStore.url)
    if parsed.scheme != "s3":
        raise UnsupportedEndpoint(
            "backend 'vllm' pulls adapters from S3; the platform's object store is "
            f"{config.objectStore.url or 'not configured'}"
        )
    prefix = parsed.path.strip("/")
    return f"s3://{parsed.netloc}/{prefix + '/' if prefix else ''}{key}"


def fetch_script(ep: Endpoint, config: OperatorConfig) -> str:
    """Shell script of the init container: copy adapters (and an s3:// base) locally."""
    endpoint = config.objectStore.endpointUrl
    flags = f" --endpoint-url {shlex.quote(endpoint)}" if endpoint else ""
    lines = ["set -eu"]
    if ep.spec.base_model.startswith("s3://"):
        lines.append(f"aws s3 sync{flags} {shlex.quote(ep.spec.base_model)} {BASE_MODEL_DIR}")
    for adapter in ep.spec.adapters:
        source = _s3_location(config, adapter.prefix.rstrip("/") + "/")
        target = f"{ADAPTERS_DIR}/{adapter.name}"
        lines.append(f"aws s3 sync{flags} {shlex.quote(source)} {shlex.quote(target)}")
    return "\n".join(lines)


def _fetch_container(ep: Endpoint, config: OperatorConfig) -> dict[str, Any]:
    secret = config.objectStore.secretName

    def from_secret(name: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    return {
        "name": "fetch-adapters",
        "image": config.images.s3Sync,
        "imagePullPolicy": config.images.pullPolicy,
        "command": ["/bin/sh", "-c", fetch_script(ep, config)],
        "env": [
            *(
                [
                    from_secret("AWS_ACCESS_KEY_ID", "TAILOR_S3_ACCESS_KEY_ID"),
                    from_secret("AWS_SECRET_ACCESS_KEY", "TAILOR_S3_SECRET_ACCESS_KEY"),
                ]
                if config.objectStore.teamCredentials == "secret"
                else []  # the ServiceAccount's cloud identity (IRSA, Workload Identity)
            ),
            {"name": "AWS_DEFAULT_REGION", "value": config.objectStore.region},
            {"name": "HOME", "value": "/tmp"},
        ],
        "resources": pods.compute_resources("250m", "512Mi", 0, None),
        "volumeMounts": [
            {"name": "adapters", "mountPath": ADAPTERS_DIR},
            {"name": "models", "mountPath": "/models"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": pods.container_security(),
    }


def vllm_args(ep: Endpoint, config: OperatorConfig) -> list[str]:
    """vLLM OpenAI server arguments: the base model with LoRA on, one module per adapter."""
    spec = ep.spec
    model = BASE_MODEL_DIR if spec.base_model.startswith("s3://") else spec.base_model
    args = [
        "--model", model,
        "--served-model-name", spec.base_model,
        "--host", "0.0.0.0",
        "--port", str(config.servingPort),
        "--enable-lora",
        "--max-loras", str(spec.max_loras),
        "--max-lora-rank", str(spec.max_lora_rank),
        "--tensor-parallel-size", str(max(spec.resources.gpus, 1)),
    ]  # fmt: skip
    if spec.adapters:
        modules = [f"{a.name}={ADAPTERS_DIR}/{a.name}" for a in spec.adapters]
        args += ["--lora-modules", *modules]
    return args


def _vllm_container(ep: Endpoint, config: OperatorConfig, pool: GpuType | None) -> dict[str, Any]:
    res = ep.spec.resources
    return {
        "name": CONTAINER,
        "image": config.images.vllm,
        "imagePullPolicy": config.images.pullPolicy,
        "args": vllm_args(ep, config),
        # vLLM's OpenAI server refuses /v1 calls without this bearer (its `--api-key`): the
        # team's endpoint token, which only the gateway sends. /health stays open for probes.
        "env": [*pods.cache_env(), endpoint_token_env(config, "VLLM_API_KEY")],
        "ports": [{"name": "http", "containerPort": config.servingPort}],
        "resources": pods.compute_resources(res.cpu, res.memory, res.gpus, pool),
        "volumeMounts": [
            {"name": "adapters", "mountPath": ADAPTERS_DIR, "readOnly": True},
            {"name": "models", "mountPath": "/models", "readOnly": True},
            {"name": "dshm", "mountPath": "/dev/shm"},
            *pods.scratch_volumes()[1],
        ],
        "securityContext": pods.container_security(),
        **_probes("/health", "http"),  # vLLM answers /health once the model is loaded
    }


def _pod_spec(ep: Endpoint, config: OperatorConfig) -> dict[str, Any]:
    res = ep.spec.resources
    pool = pods.gpu_type(config, res.gpuType)[1] if res.gpus else None
    volumes = [
        {"name": "config", "configMap": {"name": configmap_name(ep.name)}},
        *pods.scratch_volumes()[0],
    ]
    spec: dict[str, Any] = {
        **pods.identity(config),
        "securityContext": pods.pod_security(),
        **pods.placement(res.gpus, pool),
    }
    if ep.spec.backend == "vllm":
        spec["initContainers"] = [_fetch_container(ep, config)]
        spec["containers"] = [_vllm_container(ep, config, pool)]
        volumes += [
            {"name": "adapters", "emptyDir": {}},
            {"name": "models", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        ]
    else:
        spec["containers"] = [_tailor_container(ep, config, pool)]
    spec["volumes"] = volumes
    return spec


def build_deployment(ep: Endpoint, config: OperatorConfig) -> dict[str, Any]:
    """The serving Deployment; with autoscaling on, the HPA owns the replica count."""
    meta = _metadata(ep, workload_name(ep.name))
    spec: dict[str, Any] = {
        "selector": {"matchLabels": _selector(ep)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {
                "labels": meta["labels"],
                "annotations": {naming.SPEC_HASH_ANNOTATION: spec_hash(ep)},
            },
            "spec": _pod_spec(ep, config),
        },
    }
    if not ep.spec.autoscaling.enabled:
        spec["replicas"] = ep.spec.replicas
    # Queued through Kueue like training, so serving GPUs count against the team's quota.
    queue = pods.kueue_labels(config, config.kueue.servingPriorityClass)
    meta = {**meta, "labels": {**meta["labels"], **queue}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def build_service(ep: Endpoint) -> dict[str, Any]:
    """ClusterIP Service on port 80 in front of the ready replicas."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(ep, workload_name(ep.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(ep),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def build_hpa(ep: Endpoint) -> dict[str, Any]:
    """autoscaling/v2 HPA on CPU utilisation."""
    scaling = ep.spec.autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(ep, workload_name(ep.name)),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": workload_name(ep.name),
            },
            "minReplicas": scaling.minReplicas,
            "maxReplicas": scaling.maxReplicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.targetCPUUtilization,
                        },
                    },
                }
            ],
        },
    }


def build_serving(ep: Endpoint, config: OperatorConfig) -> list[dict[str, Any]]:
    """Everything an InferenceEndpoint needs, in creation order."""
    manifests = [build_configmap(ep), build_deployment(ep, config), build_service(ep)]
    if ep.spec.autoscaling.enabled:
        manifests.append(build_hpa(ep))
    return manifests
