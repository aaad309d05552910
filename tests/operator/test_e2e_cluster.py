"""End to end on the emulator, through the API only, with the chart's own pods.

The chart (default values, the test's database and bucket) is installed the way
tests/support/release.py plays it: the API, the Celery worker and beat, the operator and
the gateway run as processes from their rendered Deployments; the release's ConfigMaps and
Secrets are on the kmock API server too, where the operator reads them. The platform
admin's first token comes from `tailor admin create-token` run in the API pod (as
`kubectl exec` would); everything after that goes through the API over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from huggingface_hub import InferenceClient
from tailor_operator.serving import workload_name

from tailor.demo.gitserver import GitServer
from tailor.demo.sample_data import house_style_documents
from tailor.storage import S3Store
from tests.charts.conftest import Helm, render
from tests.charts.conftest import helm as helm
from tests.harvest.conftest import TOKEN
from tests.operator.conftest import Kube, namespace_objects, team_store_secret, upload_tiny_base
from tests.serve.conftest import FIM_PREFIX, FIM_SUFFIX
from tests.support.kubelet import Pod, run_exec
from tests.support.release import Release, fresh_database, release_values
from tests.train.conftest import CACHE_ROOT

pytestmark = pytest.mark.asyncio

TEAM = "search"
NAMESPACE = f"tailor-team-{TEAM}"
# The test's git server speaks plain HTTP on loopback, which harvesting refuses unless told.
LOOPBACK_GIT = [
    {"name": "TAILOR_GIT_ALLOW_LOOPBACK", "value": "true"},
    {"name": "TAILOR_GIT_ALLOW_HTTP", "value": "true"},
]
# Each fine-tune queues an evaluation: enough worker processes that a sync is not queued
# behind two of them.
EXTRA_VALUES = {
    "api": {"extraEnv": LOOPBACK_GIT},
    "worker": {"extraEnv": LOOPBACK_GIT, "concurrency": 4},
}
COMPLETE = {"type": "Complete", "status": "True", "reason": "CompletionsReached"}
ENDPOINT = "style"


@pytest.fixture
def database() -> Any:
    """A database of the test's own on the machine's PostgreSQL (its name)."""
    yield from fresh_database()


@pytest.fixture
def git(tmp_path: Path) -> Iterator[GitServer]:
    """The team's repository on a git smart-HTTP server: a codebase in a house style."""
    with GitServer(tmp_path / "git", tokens={TOKEN}) as server:
        docs = house_style_documents(24, 6)
        server.create_repo("quill", {path: content for path, content, _ in docs})
        yield server


@pytest_asyncio.fixture
async def release(
    helm: Helm,
    kube: Kube,
    kubeconfig: Path,
    database: str,
    s3_store: S3Store,
    s3_endpoint: str,
    tmp_path: Path,
) -> AsyncIterator[Release]:
    """The chart installed on the emulator, every workload running and ready."""
    overlay = release_values(tmp_path, False, database, s3_store, s3_endpoint, EXTRA_VALUES)
    manifests = render(helm, overlay)
    running = Release(manifests, tmp_path / "node", kube.url, kubeconfig)
    for obj in running.api_objects():
        namespace = obj["metadata"].get("namespace", "tailor")
        plural = "secrets" if obj["kind"] == "Secret" else "configmaps"
        await kube.create(f"/api/v1/namespaces/{namespace}/{plural}", obj)
    try:
        await running.run_all()
        yield running
    finally:
        running.stop()


def _pod(release: Release, component: str) -> Pod:
    [pod] = [p for p in release.kubelet.pods if p.name.endswith(f"-{component}-0")]
    return pod


def _admin_token(release: Release) -> str:
    """`kubectl exec deploy/api -- tailor admin create-token`: its one line of output."""
    api = _pod(release, "api")
    argv = ["tailor", "admin", "create-token", "--email", "admin@example.com"]
    out = api.root / "create-token.out"
    assert run_exec({"timeoutSeconds": 120}, argv, api.env, api.root, stdout=out), out.read_text()
    return out.read_text().strip().splitlines()[-1]


async def _until(what: str, check: Callable[[], bool], timeout: float = 300.0) -> None:
    """Poll `check` (an API read) until it holds: the pods work in the background."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(check):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0.5)


def _state(api: httpx.Client, path: str, auth: dict[str, str], wanted: str) -> bool:
    state = api.get(path, headers=auth).json()["state"]
    assert state not in ("failed", "cancelled") or state == wanted, state
    return bool(state == wanted)


def _fim(gateway: str, token: str) -> str:
    """An IDE's FIM completion through the gateway (OpenAI SDK)."""
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=token, max_retries=0)
    out = client.completions.create(
        model=ENDPOINT,
        prompt=FIM_PREFIX,
        suffix=FIM_SUFFIX,
        max_tokens=8,
        temperature=0,
        logprobs=1,
    )
    assert out.model == ENDPOINT and out.usage is not None and out.usage.completion_tokens > 0
    return out.choices[0].text


def _logprobs(gateway: str, token: str) -> list[float]:
    """The FIM completion's token log-probabilities: what tells two adapters apart."""
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=token, max_retries=0)
    out = client.completions.create(
        model=ENDPOINT, prompt=FIM_PREFIX, suffix=FIM_SUFFIX, max_tokens=6, temperature=0,
        logprobs=1,
    )  # fmt: skip
    assert out.choices[0].logprobs is not None and out.choices[0].logprobs.token_logprobs
    return [float(x or 0.0) for x in out.choices[0].logprobs.token_logprobs]


def _routed(gateway: str, token: str) -> bool:
    """Whether the gateway has the endpoint's backend yet (503 until the operator reports)."""
    try:
        _fim(gateway, token)
    except openai.APIStatusError as exc:
        assert exc.status_code == 503, exc
        return False
    return True


def _token(api: httpx.Client, team: str, auth: dict[str, str]) -> str:
    """An IDE token of `team` (inference scope)."""
    body = {"name": "ide", "scopes": ["inference"]}
    created = api.post(f"/v1/teams/{team}/tokens", json=body, headers=auth)
    assert created.status_code == 201, created.text
    return str(created.json()["token"])


async def _fine_tune(
    api: httpx.Client,
    kube: Kube,
    release: Release,
    auth: dict[str, str],
    dataset: str,
    steps: int,
) -> None:
    """A fine-tune of the catalog's tiny base: the worker pod submits the FineTuneJob, the
    operator pod makes the Job, Kueue (the test) admits it, the harness runs its pod and
    the Job controller (the test) marks it complete; the operator pod reports success, and
    the training pod's metrics are the job's."""
    body = {"base_model": "tiny-base", "team": TEAM, "dataset_id": dataset,
            "adapter_name": "style", "method": "lora", "max_steps": steps, "seq_len": 64,
            "micro_batch": 4, "grad_accum": 1, "eval_batches": 1}  # fmt: skip
    finetune = api.post(f"/v1/teams/{TEAM}/finetunes", json=body, headers=auth)
    assert finetune.status_code == 202, finetune.text
    uid = finetune.json()["id"]
    job_path = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{uid}"
    job = await kube.wait_for(job_path, lambda o: o is not None, timeout=120)
    assert job is not None
    await kube.patch(job_path, {"spec": {"suspend": False}, "status": {"active": 1}})
    pod = release.kubelet.run(job, await namespace_objects(kube, NAMESPACE))
    await asyncio.to_thread(pod.wait_succeeded)
    await kube.patch(job_path, {"status": {"active": 0, "succeeded": 1, "conditions": [COMPLETE]}})
    job_state = f"/v1/teams/{TEAM}/jobs/{uid}"
    await _until("trained", lambda: _state(api, job_state, auth, "succeeded"))
    # The pod posted its events with the job token the chart's key and the operator gave it.
    series = api.get(f"{job_state}/metrics", headers=auth).json()["series"]
    assert [p["step"] for p in series.get("loss", [])] == list(range(1, steps + 1)), series


async def test_a_team_onboarded_through_the_api_trains_and_is_served_on_the_cluster(
    release: Release, kube: Kube, git: GitServer, s3_store: S3Store
) -> None:
    api = httpx.Client(base_url=_pod(release, "api").url("http"), timeout=120)
    auth = {"Authorization": f"Bearer {await asyncio.to_thread(_admin_token, release)}"}
    teams = f"/v1/teams/{TEAM}"

    # A team: the worker pod syncs its Team resource, the operator pod its namespace.
    created = api.post("/v1/teams", json={"slug": TEAM, "name": "Search"}, headers=auth)
    assert created.status_code == 201, created.text
    # The admin's part: the team's own object-store keys, in its namespace once it exists.
    await kube.wait_for(f"/api/v1/namespaces/{NAMESPACE}", lambda n: n is not None, timeout=120)
    await team_store_secret(kube, TEAM)
    team = await kube.wait_for(
        f"/apis/tailor.dev/v1alpha1/teams/{TEAM}",
        lambda t: bool(t and (t.get("status") or {}).get("phase") == "Ready"),
        timeout=120,
    )
    assert team is not None
    assert await kube.get(f"/api/v1/namespaces/{NAMESPACE}") is not None
    queue = f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{NAMESPACE}/localqueues/tailor"
    assert await kube.get(queue) is not None

    # Its repository, harvested by the worker pod into the bucket.
    repo = {"name": "quill", "url": git.url("quill"), "credential_kind": "token",
            "credential": TOKEN}  # fmt: skip
    added = api.post(f"{teams}/repositories", json=repo, headers=auth)
    assert added.status_code == 201, added.text
    dataset = api.post(f"{teams}/datasets", json={}, headers=auth).json()
    path = f"{teams}/datasets/{dataset['id']}"
    await _until("harvested", lambda: _state(api, path, auth, "succeeded"))

    # A fine-tune of the catalog's tiny base: the worker submits the FineTuneJob, the
    # operator makes the Job; Kueue admits it and the harness runs its pod.
    base = await asyncio.to_thread(upload_tiny_base, s3_store, CACHE_ROOT)
    catalog = api.post("/v1/admin/base-models", json={"name": "tiny-base", "source": base},
                       headers=auth)  # fmt: skip
    assert catalog.status_code == 201, catalog.text
    await _fine_tune(api, kube, release, auth, dataset["id"], steps=2)

    # The operator pod reported success; the adapter is in the bucket and in the API.
    assert s3_store.list(f"teams/{TEAM}/adapters/style/1/")
    versions = api.get(f"{teams}/adapters/style/versions", headers=auth).json()
    assert [v["version"] for v in versions] == [1]

    # Publish: the worker pod syncs the InferenceEndpoint, the operator pod renders its
    # Deployment and Service, and the harness runs the endpoint's pod.
    publish = {"name": ENDPOINT, "adapter": "style", "version": 1, "override_gate": True}
    published = api.post(f"{teams}/endpoints", json=publish, headers=auth)
    assert published.status_code == 201, published.text
    name = workload_name(ENDPOINT)
    deployment = await kube.wait_for(
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}",
        lambda o: o is not None,
        timeout=120,
    )
    service = await kube.wait_for(
        f"/api/v1/namespaces/{NAMESPACE}/services/{name}", lambda o: o is not None
    )
    assert deployment is not None and service is not None
    served = release.serve(deployment, [service], await namespace_objects(kube, NAMESPACE))
    await asyncio.to_thread(served.wait_ready, 300)
    # The Deployment controller's part: its pod answers the readiness probe, so the replica
    # counts as ready (the operator then reports the endpoint's URL to the platform).
    generation = deployment["metadata"].get("generation") or 1
    counts = dict.fromkeys(("replicas", "readyReplicas", "updatedReplicas", "availableReplicas"), 1)
    await kube.patch(
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}",
        {"status": {**counts, "observedGeneration": generation}},
    )

    # The chart's gateway pod answers the team's IDE token, routed to the endpoint's pod.
    gateway = _pod(release, "gateway").url("http")
    token = _token(api, TEAM, auth)
    await _until("routed by the gateway", lambda: _routed(gateway, token))
    assert await asyncio.to_thread(_fim, gateway, token)
    tgi = InferenceClient(model=f"{gateway}/tgi/{ENDPOINT}", token=token)
    answer = await asyncio.to_thread(tgi.text_generation, "def total(items):\n", max_new_tokens=8)
    assert isinstance(answer, str) and answer

    # Another team's token does not see this team's endpoint.
    other = api.post("/v1/teams", json={"slug": "payments", "name": "Payments"}, headers=auth)
    assert other.status_code == 201, other.text
    with pytest.raises(openai.NotFoundError):
        await asyncio.to_thread(_fim, gateway, _token(api, "payments", auth))

    # Promote a new version: the endpoint's ConfigMap changes, the kubelet syncs the mounted
    # file, and the same pod process serves version 2 (the engine's hot load).
    before = await asyncio.to_thread(_logprobs, gateway, token)
    process = served.process.pid
    await _fine_tune(api, kube, release, auth, dataset["id"], steps=6)
    promote = {"version": 2, "override_gate": True}
    promoted = api.post(f"{teams}/endpoints/{ENDPOINT}/promote", json=promote, headers=auth)
    assert promoted.status_code == 200, promoted.text
    await kube.wait_for(
        f"/api/v1/namespaces/{NAMESPACE}/configmaps/{name}-config",
        lambda cm: cm is not None and '"version": "2"' in cm["data"]["endpoint.json"],
        timeout=300,
    )
    served.sync_volumes(await namespace_objects(kube, NAMESPACE))
    await _until("version 2 served", lambda: _logprobs(gateway, token) != before, timeout=120)
    assert served.process.pid == process and served.process.poll() is None
