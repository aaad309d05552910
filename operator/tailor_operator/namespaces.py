"""Team → namespace with its LocalQueue, ResourceQuota, NetworkPolicy, and a ClusterQueue.

Pure: a Tenant and the operator config in, manifests out.

Every team's ClusterQueue sits in one Kueue cohort: a team is guaranteed its `gpus` in its
pool (nominal quota) and may borrow up to `gpuBorrowingLimit` idle GPUs of other teams,
which Kueue reclaims by preemption when their owners need them. The namespace's
ResourceQuota caps the same totals for anything that bypasses Kueue, and the
NetworkPolicies admit traffic to endpoint pods only from the gateway's pods, and to the
team's other pods only from the namespace itself and the platform's namespace, so one team's
pods cannot reach another's, and no one reaches an endpoint except through the gateway.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from tailor.security import endpoint_token
from tailor_operator import naming
from tailor_operator.config import OperatorConfig
from tailor_operator.pods import ENDPOINT_TOKEN_KEY
from tailor_operator.resources import API_VERSION, TeamSpec

KUEUE_API = "kueue.x-k8s.io/v1beta1"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Tenant:
    """A Team as the builders need it: its slug (the resource name), uid and spec."""

    name: str
    uid: str
    spec: TeamSpec


def namespace_name(config: OperatorConfig, team: str) -> str:
    """The team's namespace, `tailor-team-<slug>` by default."""
    return f"{config.namespacePrefix}{team}"


def cluster_queue_name(config: OperatorConfig, team: str) -> str:
    """The team's Kueue ClusterQueue."""
    return f"{config.kueue.clusterQueuePrefix}{team}"


def _metadata(tenant: Tenant, name: str, namespace: str | None) -> dict[str, Any]:
    """Labels, and for objects inside the namespace an ownerReference to the Team.

    The cluster-scoped Namespace and ClusterQueue carry none: the garbage collector would
    delete them whenever a Team object goes away, including one deleted and re-created
    with the same name (a replace, a restore); only the Team delete handler removes them.
    """
    meta: dict[str, Any] = {"name": name, "labels": naming.labels("tenancy", tenant.name)}
    if namespace is not None:
        meta["namespace"] = namespace
        meta["ownerReferences"] = [
            naming.owner_reference(API_VERSION, "Team", tenant.name, tenant.uid)
        ]
    return meta


def build_namespace(tenant: Tenant, config: OperatorConfig) -> dict[str, Any]:
    """The team namespace; Pod Security 'restricted' is enforced (all Tailor pods comply)."""
    meta = _metadata(tenant, namespace_name(config, tenant.name), None)
    meta["labels"].update(
        {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn": "restricted",
        }
    )
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _gpu_pool(tenant: Tenant, config: OperatorConfig) -> str:
    pool = tenant.spec.quota.gpuType or config.defaultGpuType
    if pool not in config.gpuTypes:
        known = ", ".join(sorted(config.gpuTypes)) or "none"
        raise ValueError(f"quota.gpuType {pool!r} is not configured (the admin set up: {known})")
    return pool


def build_resource_quota(tenant: Tenant, config: OperatorConfig) -> dict[str, Any]:
    """Hard caps for the namespace: the guarantee plus what the team may borrow."""
    quota = tenant.spec.quota
    hard: dict[str, Any] = {
        "requests.cpu": quota.cpu,
        "requests.memory": quota.memory,
        "limits.memory": quota.memory,
        "pods": str(quota.pods),
    }
    gpu_resources = {pool.resourceName for pool in config.gpuTypes.values()}
    for resource in sorted(gpu_resources):
        hard[f"requests.{resource}"] = str(quota.gpus + quota.gpuBorrowingLimit)
    namespace = namespace_name(config, tenant.name)
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _metadata(tenant, "tailor-team-quota", namespace),
        "spec": {"hard": hard},
    }


# The component label of endpoint pods (serving.py): only the gateway may reach them.
INFERENCE_COMPONENT = "inference"
COMPONENT_LABEL = "app.kubernetes.io/component"


def _platform_namespace(config: OperatorConfig) -> dict[str, Any]:
    return {"matchLabels": {NAMESPACE_NAME_LABEL: config.platformNamespace}}


def build_network_policy(tenant: Tenant, config: OperatorConfig) -> dict[str, Any]:
    """Pods other than endpoints: ingress only from the team's own pods and the platform's
    namespace (the API), so one team's pods cannot reach another's."""
    namespace = namespace_name(config, tenant.name)
    not_endpoints = {"key": COMPONENT_LABEL, "operator": "NotIn", "values": [INFERENCE_COMPONENT]}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(tenant, "tailor-team-isolation", namespace),
        "spec": {
            "podSelector": {"matchExpressions": [not_endpoints]},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {}}]},
                {"from": [{"namespaceSelector": _platform_namespace(config)}]},
            ],
        },
    }


def build_endpoint_network_policy(tenant: Tenant, config: OperatorConfig) -> dict[str, Any]:
    """Endpoint pods: ingress only from the gateway's pods in the platform namespace (one
    peer, so both selectors must match). Neither the team's own pods nor the API reach an
    endpoint, and a vLLM pod is never exposed without the gateway in front."""
    namespace = namespace_name(config, tenant.name)
    gateway = {
        "namespaceSelector": _platform_namespace(config),
        "podSelector": {"matchLabels": dict(config.gatewayPodLabels)},
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(tenant, "tailor-endpoints-gateway-only", namespace),
        "spec": {
            "podSelector": {"matchLabels": {COMPONENT_LABEL: INFERENCE_COMPONENT}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [gateway]}],
        },
    }


def build_local_queue(tenant: Tenant, config: OperatorConfig) -> dict[str, Any]:
    """The LocalQueue the team's Jobs name in `kueue.x-k8s.io/queue-name`."""
    return {
        "apiVersion": KUEUE_API,
        "kind": "LocalQueue",
        "metadata": _metadata(
            tenant, config.kueue.localQueueName, namespace_name(config, tenant.name)
        ),
        "spec": {"clusterQueue": cluster_queue_name(config, tenant.name)},
    }


def _flavor_quotas(tenant: Tenant, config: OperatorConfig, pool: str) -> list[dict[str, Any]]:
    quota = tenant.spec.quota
    flavors = []
    for name, gpu in sorted(config.gpuTypes.items()):
        mine = name == pool
        gpu_quota: dict[str, Any] = {
            "name": gpu.resourceName,
            "nominalQuota": quota.gpus if mine else 0,
            "borrowingLimit": quota.gpuBorrowingLimit,
        }
        flavors.append(
            {
                "name": gpu.flavor,
                "resources": [
                    {"name": "cpu", "nominalQuota": quota.cpu if mine else "0"},
                    {"name": "memory", "nominalQuota": quota.memory if mine else "0"},
                    gpu_quota,
                ],
            }
        )
    return flavors


def build_cluster_queue(tenant: Tenant, config: OperatorConfig) -> dict[str, Any]:
    """The team's ClusterQueue in the shared cohort, admitting only its namespace."""
    pool = _gpu_pool(tenant, config)
    gpu_resources = sorted({gpu.resourceName for gpu in config.gpuTypes.values()})
    return {
        "apiVersion": KUEUE_API,
        "kind": "ClusterQueue",
        "metadata": _metadata(tenant, cluster_queue_name(config, tenant.name), None),
        "spec": {
            "cohort": config.kueue.cohort,
            "namespaceSelector": {
                "matchLabels": {NAMESPACE_NAME_LABEL: namespace_name(config, tenant.name)}
            },
            "queueingStrategy": "BestEffortFIFO",
            "preemption": {
                "reclaimWithinCohort": "Any",
                "borrowWithinCohort": {"policy": "Never"},
                "withinClusterQueue": "LowerPriority",
            },
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory", *gpu_resources],
                    "flavors": _flavor_quotas(tenant, config, pool),
                }
            ],
        },
    }


def build_object_store_secret(
    tenant: Tenant, config: OperatorConfig, data: dict[str, str]
) -> dict[str, Any]:
    """The object-store credentials in the team namespace (`data` is base64 already)."""
    return build_team_secret(tenant, config, config.objectStore.secretName, data)


def endpoint_token_for(tenant: Tenant, config: OperatorConfig) -> str:
    """The token the gateway sends to the team's endpoint pods: derived from the platform's
    key as the gateway derives it, or (no key) a fresh random one."""
    if config.endpointTokenKey is None:
        return secrets.token_urlsafe(32)
    return endpoint_token(config.endpointTokenKey.get_secret_value(), tenant.name)


def build_endpoint_token_secret(
    tenant: Tenant, config: OperatorConfig, token: str
) -> dict[str, Any]:
    """The Secret holding the team's endpoint token (its pods read it as env)."""
    data = {ENDPOINT_TOKEN_KEY: base64.b64encode(token.encode()).decode()}
    return build_team_secret(tenant, config, config.endpointTokenSecretName, data)


def build_team_secret(
    tenant: Tenant, config: OperatorConfig, name: str, data: dict[str, str]
) -> dict[str, Any]:
    """A Secret in the team namespace (`data` is base64 already)."""
    namespace = namespace_name(config, tenant.name)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(tenant, name, namespace),
        "data": dict(data),
    }


def build_tenancy(tenant: Tenant, config: OperatorConfig) -> list[dict[str, Any]]:
    """Namespace first (the rest lives in it), the Kueue objects when Kueue is on."""
    manifests = [
        build_namespace(tenant, config),
        build_resource_quota(tenant, config),
        build_network_policy(tenant, config),
        build_endpoint_network_policy(tenant, config),
    ]
    if config.kueue.enabled:
        manifests += [build_cluster_queue(tenant, config), build_local_queue(tenant, config)]
    return manifests
