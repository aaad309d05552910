"""Publishing in cluster mode: an endpoint becomes an InferenceEndpoint the operator serves.

The API runs for real with the cluster executor; publishing, promoting, rolling back and
unpublishing queue `tailor.endpoint.sync` after the commit, and the test runs that task's
function (as the worker would) against the kmock emulator, where kopf runs the operator.
What the cluster ends up with — Deployment, Service, the adapter files the pods fetch —
is read back from the emulator.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tailor_operator.resources import InferenceEndpointSpec
from tailor_operator.serving import configmap_name, workload_name

from tailor import k8s as tailor_k8s
from tailor.db.models import AdapterVersion, Endpoint, Team
from tailor.services.endpoints.sync import (
    SYNC_TASK,
    endpoint_resource,
    endpoint_spec,
    sync_endpoint,
)
from tests.api.conftest import queued_tasks
from tests.charts.validation import validate_manifest
from tests.conftest import create_tenant, create_version
from tests.operator.conftest import Kube, Platform

HUB_ID = "bigcode/starcoderbase-1b"  # the catalog's source of base "starcoderbase-1b"


def _row(version: int, backend: str = "vllm") -> tuple[Endpoint, AdapterVersion]:
    endpoint = Endpoint(name="style", replicas=2, backend=backend)
    row = AdapterVersion(
        version=version,
        base_model="starcoderbase-1b",
        prefix=f"teams/search/adapters/style/{version}/",
    )
    return endpoint, row


def test_the_resource_is_one_the_crd_and_the_operator_accept() -> None:
    endpoint, version = _row(3)

    manifest = endpoint_resource(
        "style", "tailor-team-search", endpoint_spec("search", endpoint, version, HUB_ID)
    )

    validate_manifest(manifest)  # the generated CRD's schema, strictly
    spec = InferenceEndpointSpec.model_validate(manifest["spec"])
    assert [(a.name, a.version, a.prefix) for a in spec.adapters] == [
        ("style", "3", "teams/search/adapters/style/3/")
    ]
    assert (spec.base_model, spec.replicas, spec.backend) == ("bigcode/starcoderbase-1b", 2, "vllm")
    assert spec.resources.gpus == 1  # vLLM needs a GPU


def test_the_tailor_engine_asks_for_no_gpu() -> None:
    endpoint, version = _row(1, backend="tailor")

    spec = endpoint_spec("search", endpoint, version, HUB_ID)

    manifest = endpoint_resource("style", "tailor-team-search", spec)
    assert InferenceEndpointSpec.model_validate(manifest["spec"]).resources.gpus == 0


def test_the_endpoints_context_budget_is_in_its_pods_spec_and_off_means_zero() -> None:
    endpoint, version = _row(1, backend="tailor")
    endpoint.context_enabled, endpoint.context_tokens = True, 400
    on = endpoint_spec("search", endpoint, version, HUB_ID)
    endpoint.context_enabled = False

    off = endpoint_spec("search", endpoint, version, HUB_ID)

    assert (on.context_tokens, off.context_tokens) == (400, 0)


def _team_with_two_versions(platform: Platform) -> tuple[str, int, dict[str, str]]:
    with platform.sessions() as session:
        tenant = create_tenant(session)
        team = session.get_one(Team, tenant.team.id)
        for version in (1, 2):
            create_version(session, team, name="style", version=version)
        return tenant.slug, tenant.team.id, tenant.auth()


def _fetched_adapters(deployment: dict[str, Any] | None) -> str:
    """The script the pods' init container runs: which adapter files they serve."""
    assert deployment is not None
    [fetch] = deployment["spec"]["template"]["spec"]["initContainers"]
    return str(fetch["command"][-1])


@pytest.mark.asyncio
async def test_publish_promote_and_unpublish_drive_the_endpoint_on_the_cluster(
    kube: Kube, platform: Platform, operator: None, kubeconfig: Any
) -> None:
    slug, team_id, auth = _team_with_two_versions(platform)
    namespace = f"tailor-team-{slug}"
    deployment = f"/apis/apps/v1/namespaces/{namespace}/deployments/{workload_name('style')}"
    service = f"/api/v1/namespaces/{namespace}/services/{workload_name('style')}"
    resource = f"/apis/tailor.dev/v1alpha1/namespaces/{namespace}/inferenceendpoints/style"
    base = f"/v1/teams/{slug}/endpoints"

    async def worker_sync() -> str:
        assert queued_tasks(platform.broker)[-1] == (SYNC_TASK, [team_id, "style"])
        api = tailor_k8s.connect()
        args = (platform.sessions, platform.settings, team_id, "style", api)
        return await asyncio.to_thread(sync_endpoint, *args)

    # Publish: the team's namespace gets an InferenceEndpoint, the operator its workload.
    body = {"name": "style", "adapter": "style", "version": 1, "backend": "vllm",
            "replicas": 2, "override_gate": True}  # fmt: skip
    published = platform.client.post(base, json=body, headers=auth)
    assert published.status_code == 201, published.text
    assert await worker_sync() == "created"
    served = await kube.wait_for(deployment, lambda obj: obj is not None)
    assert served is not None and served["spec"]["replicas"] == 2
    assert "adapters/style/1/" in _fetched_adapters(served)
    assert await kube.wait_for(service, lambda obj: obj is not None)

    # Repository context: a new budget reaches the file the pods read (and re-read live).
    config = f"/api/v1/namespaces/{namespace}/configmaps/{configmap_name('style')}"
    put = platform.client.put(f"{base}/style/context", json={"tokens": 400}, headers=auth)
    assert put.status_code == 200, put.text
    assert await worker_sync() == "updated"
    await kube.wait_for(config, lambda obj: '"context_tokens": 400' in str(obj))

    # Promote: the same Deployment rolls over to version 2's files.
    promote = {"version": 2, "override_gate": True}
    promoted = platform.client.post(f"{base}/style/promote", json=promote, headers=auth)
    assert promoted.status_code == 200, promoted.text
    assert await worker_sync() == "updated"
    await kube.wait_for(deployment, lambda obj: "adapters/style/2/" in _fetched_adapters(obj))

    # Roll back: version 1 again.
    assert platform.client.post(f"{base}/style/rollback", headers=auth).status_code == 200
    assert await worker_sync() == "updated"
    await kube.wait_for(deployment, lambda obj: "adapters/style/1/" in _fetched_adapters(obj))

    # Unpublish: the resource and everything the operator made for it are gone.
    assert platform.client.delete(f"{base}/style", headers=auth).status_code == 204
    assert await worker_sync() == "deleted"
    await kube.wait_for(resource, lambda obj: obj is None)
    await kube.wait_for(deployment, lambda obj: obj is None)
    assert await kube.get(service) is None
    assert (
        await asyncio.to_thread(
            sync_endpoint,
            platform.sessions,
            platform.settings,
            team_id,
            "style",
            tailor_k8s.connect(),
        )
        == "absent"
    )  # fmt: skip  (a repeated task changes nothing)
