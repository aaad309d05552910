"""kopf against the kmock emulator: a Team becomes a namespace with its queues, quota and fence."""

from __future__ import annotations

from typing import Any

import pytest
from tailor_operator.config import OperatorConfig
from tailor_operator.sink import RecordingSink

from tests.operator.conftest import (
    Kube,
    Operator,
    custom_resource,
    operator_against,
    team_store_secret,
)

TEAMS = "/apis/tailor.dev/v1alpha1/teams"
NAMESPACE = "tailor-team-payments"
KUEUE = "/apis/kueue.x-k8s.io/v1beta2"

pytestmark = pytest.mark.asyncio


def _exists(obj: dict[str, Any] | None) -> bool:
    return obj is not None


async def _platform_secret(kube: Kube) -> None:
    """The platform's own keys (API and workers): they must never reach a team namespace."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "tailor-s3", "namespace": "tailor"},
        "data": {"TAILOR_S3_ACCESS_KEY_ID": "cGxhdGZvcm0=", "TAILOR_S3_SECRET_ACCESS_KEY": "eA=="},
    }
    await kube.create("/api/v1/namespaces/tailor/secrets", secret)


async def test_a_team_gets_its_namespace_queues_quota_isolation_and_credentials(
    kube: Kube, running_operator: Operator
) -> None:
    await _platform_secret(kube)
    await team_store_secret(kube, "payments")
    spec = {"quota": {"gpus": 8, "gpuBorrowingLimit": 4}}

    await kube.create(TEAMS, custom_resource("Team", "payments", spec, None))

    team = await kube.wait_for(
        f"{TEAMS}/payments", lambda o: bool(o and (o.get("status") or {}).get("phase") == "Ready")
    )
    assert team is not None
    assert team["status"]["namespace"] == NAMESPACE
    assert await kube.get(f"/api/v1/namespaces/{NAMESPACE}") is not None
    local_queue = await kube.get(f"{KUEUE}/namespaces/{NAMESPACE}/localqueues/tailor")
    assert local_queue is not None
    assert local_queue["spec"]["clusterQueue"] == "tailor-payments"
    cluster_queue = await kube.get(f"{KUEUE}/clusterqueues/tailor-payments")
    assert cluster_queue is not None
    [gpus] = [
        r
        for r in cluster_queue["spec"]["resourceGroups"][0]["flavors"][0]["resources"]
        if r["name"] == "nvidia.com/gpu"
    ]
    assert (gpus["nominalQuota"], gpus["borrowingLimit"]) == (8, 4)
    quota = await kube.get(f"/api/v1/namespaces/{NAMESPACE}/resourcequotas/tailor-team-quota")
    assert quota is not None
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "12"
    policy_path = f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/networkpolicies"
    assert await kube.get(f"{policy_path}/tailor-team-isolation") is not None
    secret = await kube.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/tailor-object-store")
    assert secret is not None
    assert secret["data"]["TAILOR_S3_ACCESS_KEY_ID"] == "a2V5"  # the admin's per-team key
    account = await kube.get(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/tailor-workload")
    assert account is not None and account["automountServiceAccountToken"] is False
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/rolebindings"
    binding = await kube.get(f"{rbac}/tailor-operator")
    assert binding is not None and binding["roleRef"]["name"] == "tailor-operator-team"
    egress = await kube.get(f"{policy_path}/tailor-team-egress")
    assert egress is not None and egress["spec"]["policyTypes"] == ["Egress"]


async def test_each_team_gets_its_own_endpoint_token(
    kube: Kube, running_operator: Operator
) -> None:
    tokens = []
    for team in ("payments", "search"):
        await team_store_secret(kube, team)
        await kube.create(TEAMS, custom_resource("Team", team, {}, None))
        path = f"/api/v1/namespaces/tailor-team-{team}/secrets/tailor-endpoint-token"
        secret = await kube.wait_for(path, _exists)
        assert secret is not None
        tokens.append(secret["data"]["TAILOR_SERVE_ENDPOINT_TOKEN"])

    assert tokens[0] != tokens[1]


async def test_reapplying_a_team_keeps_its_endpoint_token(
    kube: Kube, running_operator: Operator
) -> None:
    await team_store_secret(kube, "payments")
    await kube.create(TEAMS, custom_resource("Team", "payments", {}, None))
    path = f"/api/v1/namespaces/{NAMESPACE}/secrets/tailor-endpoint-token"
    first = await kube.wait_for(path, _exists)
    quota_path = f"/api/v1/namespaces/{NAMESPACE}/resourcequotas/tailor-team-quota"
    quota = await kube.wait_for(quota_path, _exists)
    assert first is not None and quota is not None

    await kube.patch(f"{TEAMS}/payments", {"spec": {"quota": {"gpus": 2}}})
    await kube.wait_for(quota_path, lambda q: bool(q and q["spec"] != quota["spec"]))

    again = await kube.get(path)
    assert again is not None
    assert again["data"] == first["data"]


async def test_a_team_waits_for_its_own_credentials_and_never_gets_the_platform_keys(
    kube: Kube, running_operator: Operator
) -> None:
    await _platform_secret(kube)
    await kube.create(TEAMS, custom_resource("Team", "payments", {}, None))

    # The namespace is made, but the team is not Ready: its jobs could not reach the store.
    # The admin sees why on the Team (kopf's retry record, in an annotation).
    def told(team: dict[str, Any] | None) -> bool:
        annotations = ((team or {}).get("metadata") or {}).get("annotations") or {}
        return "waiting for the object-store Secret" in annotations.get(
            "tailor.dev/team_changed", ""
        )

    await kube.wait_for(f"{TEAMS}/payments", told)
    assert await kube.get(f"/api/v1/namespaces/{NAMESPACE}") is not None
    team = await kube.get(f"{TEAMS}/payments")
    assert team is not None
    assert (team.get("status") or {}).get("phase") != "Ready"
    assert await kube.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/tailor-object-store") is None


async def test_an_older_operators_copy_of_the_platform_keys_is_deleted(
    kube: Kube, running_operator: Operator
) -> None:
    copy = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "tailor-object-store",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": "tailor-operator"},
        },
        "data": {"TAILOR_S3_ACCESS_KEY_ID": "cGxhdGZvcm0="},
    }
    await kube.create(f"/api/v1/namespaces/{NAMESPACE}/secrets", copy)

    await kube.create(TEAMS, custom_resource("Team", "payments", {}, None))

    path = f"/api/v1/namespaces/{NAMESPACE}/secrets/tailor-object-store"
    assert await kube.wait_for(path, lambda o: o is None) is None


async def test_with_cloud_identity_a_team_is_ready_with_an_annotated_service_account(
    kube: Kube, operator_config: OperatorConfig
) -> None:
    store = operator_config.objectStore.model_copy(
        update={
            "teamCredentials": "serviceAccount",
            "serviceAccountAnnotations": {
                "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/tailor-{team}"
            },
        }
    )
    config = operator_config.model_copy(update={"objectStore": store})
    async with operator_against(kube, config, RecordingSink()):
        await kube.create(TEAMS, custom_resource("Team", "payments", {}, None))

        team = await kube.wait_for(
            f"{TEAMS}/payments",
            lambda o: bool(o and (o.get("status") or {}).get("phase") == "Ready"),
        )

    assert team is not None
    account = await kube.get(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/tailor-workload")
    assert account is not None
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/tailor-payments"
    }
    assert await kube.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/tailor-object-store") is None


async def test_deleting_a_team_removes_its_namespace_and_cluster_queue(
    kube: Kube, running_operator: Operator
) -> None:
    await team_store_secret(kube, "payments")
    await kube.create(TEAMS, custom_resource("Team", "payments", {}, None))
    await kube.wait_for(f"{KUEUE}/clusterqueues/tailor-payments", _exists)

    await kube.delete(f"{TEAMS}/payments")

    await kube.wait_for(f"{TEAMS}/payments", lambda o: o is None)
    assert await kube.get(f"{KUEUE}/clusterqueues/tailor-payments") is None
    assert await kube.get(f"/api/v1/namespaces/{NAMESPACE}") is None


async def test_a_namespace_an_older_operator_owned_is_disowned(
    kube: Kube, running_operator: Operator
) -> None:
    # Owned by the Team, the garbage collector would delete it whenever the Team object is
    # re-created; only the Team delete handler may remove a team namespace.
    await team_store_secret(kube, "payments")
    owner = {"apiVersion": "tailor.dev/v1alpha1", "kind": "Team", "name": "payments",
             "uid": "0ld-team-uid", "controller": True}  # fmt: skip
    namespace = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": NAMESPACE, "ownerReferences": [owner]}}  # fmt: skip
    await kube.create("/api/v1/namespaces", namespace)

    await kube.create(TEAMS, custom_resource("Team", "payments", {}, None))

    disowned = await kube.wait_for(
        f"/api/v1/namespaces/{NAMESPACE}",
        lambda o: bool(o and not o["metadata"].get("ownerReferences")),
    )
    assert disowned is not None
