"""kopf against the kmock emulator: an InferenceEndpoint becomes a Deployment and a Service.

The tests play the Deployment controller and the kubelet by patching Deployment status.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import eventually
from tests.operator.conftest import NAMESPACE, Kube, Operator, custom_resource, endpoint_spec

ENDPOINTS = f"/apis/tailor.dev/v1alpha1/namespaces/{NAMESPACE}/inferenceendpoints"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
SERVICES = f"/api/v1/namespaces/{NAMESPACE}/services"
HASH = "tailor.dev/spec-hash"

pytestmark = pytest.mark.asyncio


def _phase(phase: str) -> Any:
    return lambda obj: obj is not None and (obj.get("status") or {}).get("phase") == phase


def _template_hash(deployment: dict[str, Any] | None) -> str | None:
    if deployment is None:
        return None
    return deployment["spec"]["template"]["metadata"]["annotations"][HASH]


async def _publish(kube: Kube, name: str, **spec: Any) -> dict[str, Any]:
    body = custom_resource("InferenceEndpoint", name, endpoint_spec(**spec), NAMESPACE)
    await kube.create(ENDPOINTS, body)
    deployment = await kube.wait_for(f"{DEPLOYMENTS}/{name}", lambda o: o is not None)
    assert deployment is not None
    return deployment


async def test_an_endpoint_becomes_a_deployment_behind_a_service(
    kube: Kube, running_operator: Operator
) -> None:
    deployment = await _publish(kube, "search-code")

    # The handler creates the Service after the Deployment: wait for it too.
    service = await kube.wait_for(f"{SERVICES}/search-code", lambda o: o is not None)
    assert service is not None
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    command = ["tailor", "serve-endpoint", "--config", "/config/endpoint.json"]
    assert container["command"][:4] == command
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # No replica has loaded the model yet.
    ie = await kube.wait_for(
        f"{ENDPOINTS}/search-code",
        lambda o: _phase("Progressing")(o) and "url" in o["status"],
    )
    assert ie is not None
    assert ie["status"]["url"] == f"http://search-code.{NAMESPACE}.svc.cluster.local"


async def test_an_endpoint_is_ready_once_its_replicas_loaded_the_model(
    kube: Kube, running_operator: Operator
) -> None:
    await _publish(kube, "search-ready")
    await kube.wait_for(f"{ENDPOINTS}/search-ready", _phase("Progressing"))

    ready = {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}
    await kube.patch(f"{DEPLOYMENTS}/search-ready", {"status": ready})

    ie = await kube.wait_for(f"{ENDPOINTS}/search-ready", _phase("Ready"))
    assert ie is not None and ie["status"]["readyReplicas"] == 2
    assert running_operator.sink.phases("search-ready")[-1] == "Ready"


async def test_the_platform_is_told_where_a_ready_endpoint_answers(
    kube: Kube, running_operator: Operator
) -> None:
    await _publish(kube, "search-told")
    await kube.wait_for(f"{ENDPOINTS}/search-told", _phase("Progressing"))

    ready = {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}
    await kube.patch(f"{DEPLOYMENTS}/search-told", {"status": ready})
    await kube.wait_for(f"{ENDPOINTS}/search-told", _phase("Ready"))

    ready = {r.url for r in running_operator.sink.reports if r.phase == "Ready"}
    assert ready == {f"http://search-told.{NAMESPACE}.svc.cluster.local"}


async def test_the_platform_is_told_the_url_again_when_the_endpoint_changes(
    kube: Kube, running_operator: Operator
) -> None:
    await _publish(kube, "search-again")
    ready = {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}
    await kube.patch(f"{DEPLOYMENTS}/search-again", {"status": ready})
    await kube.wait_for(f"{ENDPOINTS}/search-again", _phase("Ready"))
    before = len(running_operator.sink.reports)

    # A promotion on the Tailor engine: the pods stay as they are, only the spec changes.
    await kube.patch(f"{ENDPOINTS}/search-again", {"spec": {"adapters": [PROMOTED]}})

    def told() -> bool:
        return any(r.url for r in running_operator.sink.reports[before:])

    assert await asyncio.to_thread(eventually, told)
    urls = {r.url for r in running_operator.sink.reports[before:] if r.url}
    assert urls == {f"http://search-again.{NAMESPACE}.svc.cluster.local"}


PROMOTED = {
    "name": "search-style",
    "version": "2",
    "prefix": "teams/search/adapters/search-style/2/",
}
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"


async def test_promoting_on_the_tailor_engine_updates_its_mounted_spec(
    kube: Kube, running_operator: Operator
) -> None:
    await _publish(kube, "search-hot")

    await kube.patch(f"{ENDPOINTS}/search-hot", {"spec": {"adapters": [PROMOTED]}})

    def promoted(cm: dict[str, Any] | None) -> bool:
        return cm is not None and '"version": "2"' in cm["data"]["endpoint.json"]

    assert await kube.wait_for(f"{CONFIGMAPS}/search-hot-config", promoted)


async def test_promoting_on_vllm_rolls_the_pods(kube: Kube, running_operator: Operator) -> None:
    vllm = {"backend": "vllm", "resources": {"gpus": 1}}
    before = _template_hash(await _publish(kube, "search-roll", **vllm))
    promoted = PROMOTED

    await kube.patch(f"{ENDPOINTS}/search-roll", {"spec": {"adapters": [promoted]}})

    after = await kube.wait_for(
        f"{DEPLOYMENTS}/search-roll", lambda o: _template_hash(o) not in (None, before)
    )
    assert after is not None
    assert after["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


async def test_deleting_an_endpoint_removes_its_workload(
    kube: Kube, running_operator: Operator
) -> None:
    await _publish(kube, "search-gone", autoscaling={"enabled": True, "maxReplicas": 3})
    hpa = f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers/search-gone"
    assert await kube.wait_for(hpa, lambda o: o is not None)

    await kube.delete(f"{ENDPOINTS}/search-gone")

    await kube.wait_for(f"{ENDPOINTS}/search-gone", lambda o: o is None)
    assert await kube.get(f"{DEPLOYMENTS}/search-gone") is None
    assert await kube.get(f"{SERVICES}/search-gone") is None
    assert await kube.get(hpa) is None
