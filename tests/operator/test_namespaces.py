"""Team → namespace, quota, isolation, Kueue queues: pure builders, no cluster."""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

import pytest
from pydantic import SecretStr
from tailor_operator import namespaces
from tailor_operator.config import GpuType, OperatorConfig, TeamAccess
from tailor_operator.resources import TeamSpec

from tailor.security import endpoint_token
from tests.charts.validation import validate_manifest


def make_tenant(name: str = "search", **quota: Any) -> namespaces.Tenant:
    spec = TeamSpec.model_validate({"quota": {"gpus": 8, "gpuBorrowingLimit": 4, **quota}})
    return namespaces.Tenant(name, "uid-3", spec)


def _by_kind(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in manifests}


def test_every_manifest_validates(operator_config: OperatorConfig) -> None:
    tenant = make_tenant()
    manifests = namespaces.build_tenancy(tenant, operator_config)
    token = namespaces.endpoint_token_for(tenant, operator_config)
    manifests.append(namespaces.build_endpoint_token_secret(tenant, operator_config, token))
    assert "ServiceAccount" in {m["kind"] for m in manifests}

    for manifest in manifests:
        validate_manifest(manifest)


def test_a_team_gets_its_own_restricted_namespace(operator_config: OperatorConfig) -> None:
    namespace = namespaces.build_namespace(make_tenant(), operator_config)

    assert namespace["metadata"]["name"] == "tailor-team-search"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_no_cluster_scoped_object_is_owned_by_the_team(operator_config: OperatorConfig) -> None:
    # Owned, they would be garbage-collected whenever a Team object goes away, even one
    # deleted and re-created under the same name; the Team delete handler removes them.
    tenant = make_tenant()
    namespace = namespaces.build_namespace(tenant, operator_config)
    queue = namespaces.build_cluster_queue(tenant, operator_config)

    assert "ownerReferences" not in namespace["metadata"]
    assert "ownerReferences" not in queue["metadata"]


def test_the_cluster_queue_guarantees_the_quota_and_lets_the_team_borrow(
    operator_config: OperatorConfig,
) -> None:
    queue = namespaces.build_cluster_queue(make_tenant(), operator_config)["spec"]

    assert queue["cohortName"] == "tailor"  # v1beta2 (was `cohort`)
    assert queue["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "tailor-team-search"
    }
    flavor = queue["resourceGroups"][0]["flavors"][0]
    gpu = {r["name"]: r for r in flavor["resources"]}["nvidia.com/gpu"]
    assert (flavor["name"], gpu["nominalQuota"], gpu["borrowingLimit"]) == ("a100-80gb", 8, 4)
    assert queue["preemption"]["reclaimWithinCohort"] == "Any"


def test_other_gpu_pools_can_only_be_borrowed(operator_config: OperatorConfig) -> None:
    pools = dict(operator_config.gpuTypes)
    pools["nvidia-h100-80gb"] = GpuType(flavor="h100-80gb")
    config = operator_config.model_copy(update={"gpuTypes": pools})

    queue = namespaces.build_cluster_queue(make_tenant(), config)["spec"]

    quotas = {
        f["name"]: {r["name"]: r["nominalQuota"] for r in f["resources"]}
        for f in queue["resourceGroups"][0]["flavors"]
    }
    assert quotas["h100-80gb"] == {"cpu": "0", "memory": "0", "nvidia.com/gpu": 0}
    assert quotas["a100-80gb"]["nvidia.com/gpu"] == 8


def test_the_namespace_quota_caps_guarantee_plus_borrowing(
    operator_config: OperatorConfig,
) -> None:
    quota = namespaces.build_resource_quota(make_tenant(cpu="32"), operator_config)

    hard = quota["spec"]["hard"]
    assert hard["requests.nvidia.com/gpu"] == "12"
    assert hard["requests.cpu"] == "32"


def test_only_the_team_and_the_platform_namespace_reach_team_pods(
    operator_config: OperatorConfig,
) -> None:
    policy = namespaces.build_network_policy(make_tenant(), operator_config)["spec"]

    not_endpoints = {
        "key": "app.kubernetes.io/component",
        "operator": "NotIn",
        "values": ["inference"],
    }
    assert policy["podSelector"] == {"matchExpressions": [not_endpoints]}
    assert policy["policyTypes"] == ["Ingress"]
    sources = [peer for rule in policy["ingress"] for peer in rule["from"]]
    assert sources == [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tailor"}}},
    ]


def test_only_the_gateways_pods_reach_endpoint_pods(operator_config: OperatorConfig) -> None:
    policy = namespaces.build_endpoint_network_policy(make_tenant(), operator_config)["spec"]

    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "inference"}}
    assert policy["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tailor"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}},
                }
            ]
        }
    ]


def test_the_endpoint_token_is_the_one_the_gateway_derives(
    operator_config: OperatorConfig,
) -> None:
    keyed = operator_config.model_copy(update={"endpointTokenKey": SecretStr("platform-key")})
    tenant = make_tenant()

    token = namespaces.endpoint_token_for(tenant, keyed)
    secret = namespaces.build_endpoint_token_secret(tenant, keyed, token)

    stored = base64.b64decode(secret["data"]["TAILOR_SERVE_ENDPOINT_TOKEN"]).decode()
    assert stored == endpoint_token("platform-key", tenant.name)
    assert stored != endpoint_token("platform-key", "another-team")


def test_the_local_queue_points_at_the_team_cluster_queue(
    operator_config: OperatorConfig,
) -> None:
    manifests = _by_kind(namespaces.build_tenancy(make_tenant(), operator_config))

    local = manifests["LocalQueue"]
    assert local["metadata"]["namespace"] == "tailor-team-search"
    assert local["spec"]["clusterQueue"] == manifests["ClusterQueue"]["metadata"]["name"]


def test_a_quota_in_an_unconfigured_pool_is_an_error(operator_config: OperatorConfig) -> None:
    with pytest.raises(ValueError, match=r"quota\.gpuType 'tpu'"):
        namespaces.build_cluster_queue(make_tenant(gpuType="tpu"), operator_config)


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


def _egress_allows(
    policy: dict[str, Any],
    ip: str,
    port: int,
    protocol: str = "TCP",
    namespace: dict[str, str] | None = None,
    pod: dict[str, str] | None = None,
    same_namespace: bool = False,
) -> bool:
    """Whether a NetworkPolicy's egress rules let a pod connect (Kubernetes' semantics).

    `namespace`/`pod` are the destination's labels when it is a pod, None outside the cluster.
    """
    for rule in policy["spec"]["egress"]:
        ports = rule.get("ports")
        if ports and not any((p["port"], p["protocol"]) == (port, protocol) for p in ports):
            continue
        for peer in rule["to"]:
            if "ipBlock" in peer:
                block, addr = peer["ipBlock"], ipaddress.ip_address(ip)
                cut = any(addr in ipaddress.ip_network(e) for e in block.get("except", []))
                if addr in ipaddress.ip_network(block["cidr"]) and not cut:
                    return True
            elif pod is not None:
                ns_selector = peer.get("namespaceSelector")
                ns_ok = (
                    same_namespace
                    if ns_selector is None
                    else _matches(ns_selector, namespace or {})
                )
                if ns_ok and _matches(peer.get("podSelector", {}), pod):
                    return True
    return False


def test_team_pods_reach_dns_the_store_and_the_api_but_not_the_platforms_data_or_metadata(
    operator_config: OperatorConfig,
) -> None:
    policies = [
        m for m in namespaces.build_tenancy(make_tenant(), operator_config)
        if m["kind"] == "NetworkPolicy" and "Egress" in m["spec"]["policyTypes"]
    ]  # fmt: skip
    [policy] = policies
    platform = {"kubernetes.io/metadata.name": "tailor"}
    tailor = {"app.kubernetes.io/name": "tailor", "app.kubernetes.io/instance": "t"}

    dns = {"kubernetes.io/metadata.name": "kube-system"}
    assert _egress_allows(policy, "10.96.0.10", 53, "UDP", dns, {"k8s-app": "kube-dns"})
    assert _egress_allows(policy, "52.216.8.1", 443)  # S3
    api = {**tailor, "app.kubernetes.io/component": "api"}
    assert _egress_allows(policy, "10.1.0.7", 8000, namespace=platform, pod=api)
    assert _egress_allows(policy, "10.1.2.3", 29500, pod={}, same_namespace=True)  # rendezvous

    postgres = {**tailor, "app.kubernetes.io/component": "postgresql"}
    redis = {**tailor, "app.kubernetes.io/component": "redis"}
    assert not _egress_allows(policy, "10.1.0.8", 5432, namespace=platform, pod=postgres)
    assert not _egress_allows(policy, "10.1.0.9", 6379, namespace=platform, pod=redis)
    assert not _egress_allows(policy, "10.1.0.7", 9100, namespace=platform, pod=api)
    assert not _egress_allows(policy, "169.254.169.254", 80)  # cloud metadata
    assert not _egress_allows(policy, "169.254.169.254", 443)
    other_team = {"kubernetes.io/metadata.name": "tailor-team-other"}
    assert not _egress_allows(policy, "10.1.3.4", 8000, namespace=other_team, pod={})
    validate_manifest(policy)


def test_the_operator_binds_its_team_role_in_the_namespace_before_writing_there(
    operator_config: OperatorConfig,
) -> None:
    access = TeamAccess(
        clusterRole="tailor-operator-team", serviceAccount="tailor-operator",
        serviceAccountNamespace="tailor",
    )  # fmt: skip
    config = operator_config.model_copy(update={"teamAccess": access})

    manifests = namespaces.build_tenancy(make_tenant(), config)

    assert [m["kind"] for m in manifests[:2]] == ["Namespace", "RoleBinding"]
    binding = manifests[1]
    assert binding["metadata"]["namespace"] == "tailor-team-search"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "tailor-operator-team",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "tailor-operator", "namespace": "tailor"}
    ]
    validate_manifest(binding)
