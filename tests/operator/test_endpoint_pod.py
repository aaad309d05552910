"""The endpoint pod the operator renders, run: its command, env, Secrets and mounted spec.

The operator reconciles an InferenceEndpoint on the emulator; the harness kubelet starts the
Deployment's container as a local process against a moto S3 server holding the tiny base and a
published adapter, and the OpenAI SDK calls it as the gateway does.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from tailor_operator.config import ObjectStore, OperatorConfig

from tailor.demo.tiny import tiny_base_cached
from tailor.storage import S3Store
from tests.operator.conftest import NAMESPACE, Kube, Operator, custom_resource, endpoint_spec
from tests.serve.conftest import CACHE_ROOT, FIM_PREFIX, FIM_SUFFIX, AdapterFactory
from tests.support.kubelet import Kubelet, Objects, Pod

pytestmark = pytest.mark.asyncio

ENDPOINTS = f"/apis/tailor.dev/v1alpha1/namespaces/{NAMESPACE}/inferenceendpoints"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"
GATEWAY_TOKEN = "gw-shared-token-for-tests"
ADAPTER = "search-style"


@pytest.fixture
def operator_config(s3_store: S3Store, s3_endpoint: str) -> OperatorConfig:
    """The platform's object store is the test's bucket behind moto."""
    return OperatorConfig(objectStore=ObjectStore(url=s3_store.url, endpointUrl=s3_endpoint))


@pytest.fixture
def base_model(s3_store: S3Store) -> str:
    """The tiny base model's files in the bucket; its s3:// URL."""
    local = tiny_base_cached(CACHE_ROOT)
    for path in local.rglob("*"):
        if path.is_file():
            s3_store.upload_file(path, f"models/tiny/{path.relative_to(local)}")
    return f"{s3_store.url}models/tiny"


@pytest.fixture
def adapters(s3_store: S3Store) -> AdapterFactory:
    """Publishes LoRA adapters of the tiny base into the bucket."""
    return AdapterFactory(tiny_base_cached(CACHE_ROOT), s3_store)  # type: ignore[arg-type]


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[Kubelet]:
    """The harness kubelet; the image's PATH is this environment's (where `tailor` is)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    image_env = {"PATH": path, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    runner = Kubelet(tmp_path / "node", image_env)
    yield runner
    runner.stop_all()


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


async def _objects(kube: Kube, name: str) -> Objects:
    """What the kubelet reads from the API server for the endpoint's pod."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, path in (("ConfigMap", CONFIGMAPS), ("Secret", SECRETS)):
        status, listing = await kube.request("GET", path)
        assert status == 200, listing
        for item in listing["items"]:
            found[(kind, item["metadata"]["name"])] = item
    assert ("ConfigMap", f"{name}-config") in found
    return found


def _version(prefix: str) -> dict[str, str]:
    return {"name": ADAPTER, "version": prefix.rstrip("/").rsplit("/", 1)[-1], "prefix": prefix}


@asynccontextmanager
async def published(
    kube: Kube, kubelet: Kubelet, config: OperatorConfig, name: str, base: str, prefix: str
) -> AsyncIterator[Pod]:
    """Publish an endpoint, let the operator render it, run its pod until it is ready."""
    # What the Team handler puts in a team namespace (its reactor is not what is tested here).
    await kube.create(
        SECRETS,
        _secret(
            config.objectStore.secretName,
            {"TAILOR_S3_ACCESS_KEY_ID": "test", "TAILOR_S3_SECRET_ACCESS_KEY": "test"},
        ),
    )
    await kube.create(
        SECRETS,
        _secret(config.endpointTokenSecretName, {"TAILOR_SERVE_ENDPOINT_TOKEN": GATEWAY_TOKEN}),
    )
    spec = endpoint_spec(base_model=base, adapters=[_version(prefix + "/")], replicas=1)
    await kube.create(ENDPOINTS, custom_resource("InferenceEndpoint", name, spec, NAMESPACE))
    deployment = await kube.wait_for(f"{DEPLOYMENTS}/{name}", lambda o: o is not None)
    assert deployment is not None
    pod = kubelet.run(deployment, await _objects(kube, name))
    await asyncio.to_thread(pod.wait_ready)
    yield pod


def _client(pod: Pod, token: str = GATEWAY_TOKEN) -> openai.OpenAI:
    return openai.OpenAI(base_url=pod.url("http") + "/v1", api_key=token, max_retries=0)


def _fim(client: openai.OpenAI) -> list[float]:
    completion = client.completions.create(
        model=ADAPTER,
        prompt=FIM_PREFIX,
        suffix=FIM_SUFFIX,
        max_tokens=6,
        temperature=0,
        logprobs=1,
    )
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.token_logprobs
    return [float(x or 0.0) for x in logprobs.token_logprobs]


async def test_the_rendered_endpoint_pod_answers_a_fim_completion(
    kube: Kube,
    running_operator: Operator,
    kubelet: Kubelet,
    operator_config: OperatorConfig,
    base_model: str,
    adapters: AdapterFactory,
) -> None:
    prefix = adapters.create("search", ADAPTER, "1", seed=1)

    async with published(kube, kubelet, operator_config, "pod-fim", base_model, prefix) as pod:
        completion = await asyncio.to_thread(
            _client(pod).completions.create,
            model=ADAPTER,
            prompt=FIM_PREFIX,
            suffix=FIM_SUFFIX,
            max_tokens=6,
        )

    assert completion.model == ADAPTER
    assert completion.usage is not None and completion.usage.completion_tokens > 0


async def test_the_endpoint_pod_refuses_any_token_but_the_gateways(
    kube: Kube,
    running_operator: Operator,
    kubelet: Kubelet,
    operator_config: OperatorConfig,
    base_model: str,
    adapters: AdapterFactory,
) -> None:
    prefix = adapters.create("search", ADAPTER, "1", seed=1)

    async with published(kube, kubelet, operator_config, "pod-auth", base_model, prefix) as pod:
        with pytest.raises(openai.AuthenticationError):
            await asyncio.to_thread(_fim, _client(pod, "a-team-token-of-the-gateway"))


async def test_a_promoted_version_is_served_without_restarting_the_pod(
    kube: Kube,
    running_operator: Operator,
    kubelet: Kubelet,
    operator_config: OperatorConfig,
    base_model: str,
    adapters: AdapterFactory,
) -> None:
    first = adapters.create("search", ADAPTER, "1", seed=1)
    second = adapters.create("search", ADAPTER, "2", seed=2)
    async with published(kube, kubelet, operator_config, "pod-hot", base_model, first) as pod:
        before = await asyncio.to_thread(_fim, _client(pod))
        process = pod.process.pid

        await kube.patch(f"{ENDPOINTS}/pod-hot", {"spec": {"adapters": [_version(second + "/")]}})
        await kube.wait_for(
            f"{CONFIGMAPS}/pod-hot-config",
            lambda cm: cm is not None and '"version": "2"' in cm["data"]["endpoint.json"],
        )
        pod.sync_volumes(await _objects(kube, "pod-hot"))  # the kubelet's ConfigMap sync
        after = await asyncio.to_thread(_fim, _client(pod))

        assert pod.process.pid == process and pod.process.poll() is None
    assert after != before
