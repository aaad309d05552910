"""The gateway in cluster mode: team tokens checked in the database, calls forwarded to a real
`tailor serve-endpoint` process (the endpoint's pod) with the team's endpoint token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from huggingface_hub import InferenceClient
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.db.models import Role
from tailor.gateway import Routing
from tailor.security import endpoint_token
from tailor.services.endpoints import service as endpoint_service
from tailor.services.endpoints.schemas import EndpointCreate
from tailor.services.endpoints.sync import record_backend
from tailor.services.tokens.service import authenticate
from tailor.stages.serve.callers import base_family
from tailor.stages.serve.ide import IdeModel
from tailor.stages.serve.proxy import create_proxy_app, openai_body_for_vllm
from tailor.storage import FileStore
from tailor.tenancy import team_for
from tests.conftest import SERVED_BASE, create_tenant, create_token, create_version
from tests.support.tabby_agent import tabby_agent

from .conftest import FIM_PREFIX, FIM_SUFFIX, AdapterFactory, LiveServer, free_port, start_server
from .test_context import publish
from .test_gateway import publish_version_1
from .test_tabby import get, post

TEAM = "cluster-search"  # the team the endpoint pod serves
KEY = "endpoint-token-key-for-tests"
GREEDY = {"ignore_eos": True, "stop_at_block_end": False}
PLANTED = "settle_payout_qz42"  # only the pod's team defines it
FOREIGN = "settle_payout_zz99"  # only another team, whose index is in the same store, does
CONTEXT_TOKENS = 200


@dataclass
class EndpointPod:
    """A running `tailor serve-endpoint` process and the adapter key it serves."""

    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def pod(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointPod]:
    """The team's endpoint pod, as the operator renders it: spec file, store, token env."""
    root = tmp_path_factory.mktemp("endpoint-pod")
    store = FileStore(root / "objects")
    prefix = AdapterFactory(tiny_base, store).create(TEAM, "completion", "1", seed=21)
    for team, name in ((TEAM, PLANTED), ("other-team", FOREIGN)):
        code = f'def {name}(batch):\n    """Settle a payout batch."""\n    return batch\n'
        publish(store, team, "payments", "payments/payouts.py", code)
    spec = {
        "team": TEAM,
        "base_model": str(tiny_base),
        "adapters": [{"name": "completion", "version": "1", "prefix": prefix + "/"}],
        "context_tokens": CONTEXT_TOKENS,  # as the API sets it from the endpoint's context
    }
    (root / "endpoint.json").write_text(json.dumps(spec))
    port = free_port()
    env = {
        **os.environ,
        "TAILOR_OBJECT_STORE_URL": f"file://{root / 'objects'}",
        "TAILOR_SERVE_ENDPOINT_TOKEN": endpoint_token(KEY, TEAM),
        "TAILOR_HOME": str(root / "home"),
    }
    tailor = str(Path(sys.executable).parent / "tailor")
    command = [tailor, "serve-endpoint", "--config", str(root / "endpoint.json")]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield EndpointPod(url, process)
    finally:
        process.terminate()
        process.wait(60)


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300  # a cold start on a busy machine loads the base slowly
    while time.monotonic() < deadline:
        assert process.poll() is None, "the endpoint pod exited"
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the endpoint pod did not become ready")


@dataclass
class Cluster:
    """The gateway in cluster mode, and an IDE token of the team whose endpoint is on the pod."""

    gateway: LiveServer
    token: str


@pytest.fixture
def routing(connection: Connection) -> Routing:
    """Routing whose transactions are savepoints of the test's own (rolled back after it)."""

    @contextmanager
    def savepoint() -> Iterator[Connection]:
        with connection.begin_nested():
            yield connection

    return Routing(savepoint, savepoint)


@pytest.fixture
def team_token(session: Session, pod: EndpointPod, settings: Settings) -> str:
    """The team's IDE token; its endpoint `completion` published and reported ready."""
    tenant = create_tenant(session, TEAM)
    create_version(session, tenant.team, "completion", 1)
    _access, token = publish_version_1(session, tenant)
    # What the operator reports once the InferenceEndpoint is ready (its status.url).
    record_backend(session, settings, f"tailor-team-{TEAM}", "completion", pod.url)
    session.commit()
    return token


@contextmanager
def gateway(routing: Routing, path_prefix: str = "") -> Iterator[LiveServer]:
    app = create_proxy_app(
        lookup=routing.lookup,
        list_models=routing.models,
        token_for=lambda team: endpoint_token(KEY, team),
        base_name=SERVED_BASE,
        path_prefix=path_prefix,
    )
    live = start_server(app)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def cluster(routing: Routing, team_token: str) -> Iterator[Cluster]:
    with gateway(routing) as live:
        yield Cluster(live, team_token)


def _fim(base_url: str, token: str, stream: bool) -> str:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=token, max_retries=0)
    if stream:
        chunks = client.completions.create(
            model="completion",
            prompt=FIM_PREFIX,
            suffix=FIM_SUFFIX,
            max_tokens=8,
            temperature=0,
            stream=True,
            extra_body=GREEDY,
        )
        return "".join(c.choices[0].text for c in chunks if c.choices)
    out = client.completions.create(
        model="completion",
        prompt=FIM_PREFIX,
        suffix=FIM_SUFFIX,
        max_tokens=8,
        temperature=0,
        extra_body=GREEDY,
    )
    return out.choices[0].text


def test_a_fim_completion_is_answered_by_the_endpoints_pod(
    cluster: Cluster, pod: EndpointPod
) -> None:
    through_gateway = _fim(cluster.gateway.url, cluster.token, stream=False)

    assert through_gateway == _fim(pod.url, endpoint_token(KEY, TEAM), stream=False)
    assert through_gateway


def test_a_completion_through_the_gateway_gets_its_teams_snippets_only(cluster: Cluster) -> None:
    prefix = (
        f"from payments.payouts import {PLANTED}, {FOREIGN}\n\n\ndef close(batch):\n    return "
    )
    segments = {"prefix": prefix, "suffix": "\n", "filepath": "payments/close.py"}
    body = {"language": "python", "segments": segments, "debug_options": {"return_snippets": True}}

    resp = post(cluster.gateway, "/tabby/completion/v1/completions", body, token=cluster.token)

    debug = resp.json()["debug_data"]
    first = debug["snippets"][0]
    assert (first["symbol"], first["filepath"]) == (PLANTED, "payments/payouts.py")
    assert 0 < debug["tokens"] <= debug["budget"] == CONTEXT_TOKENS
    assert FOREIGN not in json.dumps([debug["snippets"], debug["left_out"]])


def test_a_streamed_fim_completion_passes_through(cluster: Cluster, pod: EndpointPod) -> None:
    streamed = _fim(cluster.gateway.url, cluster.token, stream=True)

    assert streamed == _fim(pod.url, endpoint_token(KEY, TEAM), stream=False)


def test_a_tgi_call_is_answered_by_the_endpoints_pod(cluster: Cluster, pod: EndpointPod) -> None:
    prompt = "def total(items):\n"
    via = InferenceClient(model=f"{cluster.gateway.url}/tgi/completion", token=cluster.token)
    direct = InferenceClient(model=f"{pod.url}/tgi/completion", token=endpoint_token(KEY, TEAM))

    answer = via.text_generation(prompt, max_new_tokens=8, temperature=None)

    assert answer == direct.text_generation(prompt, max_new_tokens=8, temperature=None)


def _as_gateway() -> dict[str, str]:
    """What the gateway sends the pod: the team's endpoint token."""
    return {"Authorization": f"Bearer {endpoint_token(KEY, TEAM)}"}


def _pod_get(pod: EndpointPod, path: str) -> Any:
    return httpx.get(f"{pod.url}{path}", headers=_as_gateway(), timeout=30).json()


def test_the_tabby_agent_completes_through_the_gateway(
    cluster: Cluster, pod: EndpointPod, tmp_path: Path
) -> None:
    model = IdeModel("completion", base_family(SERVED_BASE), fim=None)
    with tabby_agent(cluster.gateway.url, model, cluster.token, tmp_path) as agent:
        items = agent.complete(FIM_PREFIX, FIM_SUFFIX)
    body = {"language": "python", "segments": {"prefix": FIM_PREFIX, "suffix": FIM_SUFFIX}}
    url = f"{pod.url}/tabby/completion/v1/completions"
    direct = httpx.post(url, json=body, headers=_as_gateway(), timeout=60).json()

    assert items, "the agent offered no completion"
    assert items[0]["data"]["completionId"].startswith("cmpl-")
    assert items[0]["textEdit"]["newText"] == direct["choices"][0]["text"]


def test_tabby_health_and_settings_come_from_the_endpoints_pod(
    cluster: Cluster, pod: EndpointPod
) -> None:
    for path in ("/tabby/completion/v1/health", "/tabby/completion/v1beta/server_setting"):
        answer = get(cluster.gateway, path, token=cluster.token)

        assert (answer.status_code, answer.json()) == (200, _pod_get(pod, path))


def test_tabby_health_of_another_teams_model_is_not_found(
    session: Session, cluster: Cluster
) -> None:
    other = create_tenant(session)
    token = create_token(session, other.owner, team=other.team, scopes=("inference",))
    session.commit()

    answer = get(cluster.gateway, "/tabby/completion/v1/health", token=token)

    assert answer.status_code == 404


def test_editor_events_are_taken_and_say_they_were_not_recorded(cluster: Cluster) -> None:
    event = {"type": "select", "completion_id": "cmpl-1", "choice_index": 0}
    tabby = post(cluster.gateway, "/tabby/completion/v1/events", event, token=cluster.token)
    openai_side = post(
        cluster.gateway, "/v1/completions/cmpl-1/feedback", {"event": "select"}, cluster.token
    )

    for answer in (tabby, openai_side):
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"accepted": "select", "completion_id": "cmpl-1", "recorded": False}


def test_continues_ollama_start_and_model_list_come_through_the_gateway(
    cluster: Cluster, pod: EndpointPod
) -> None:
    show = post(cluster.gateway, "/api/show", {"name": "completion"}, token=cluster.token)
    direct = httpx.post(f"{pod.url}/api/show", json={"model": "completion"}, headers=_as_gateway())
    tags = get(cluster.gateway, "/api/tags", token=cluster.token).json()

    assert (show.status_code, show.json()) == (200, direct.json())
    assert [m["name"] for m in tags["models"]] == ["completion"]


def test_a_gateway_under_an_ingress_path_forwards_the_same(
    routing: Routing, team_token: str, pod: EndpointPod
) -> None:
    with gateway(routing, path_prefix="/gateway") as live:
        answer = _fim(f"{live.url}/gateway", team_token, stream=False)

    assert answer == _fim(pod.url, endpoint_token(KEY, TEAM), stream=False)


def test_another_teams_token_is_refused(session: Session, cluster: Cluster) -> None:
    other = create_tenant(session)
    token = create_token(session, other.owner, team=other.team, scopes=("inference",))
    session.commit()
    client = openai.OpenAI(base_url=f"{cluster.gateway.url}/v1", api_key=token, max_retries=0)

    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="completion", prompt="x", max_tokens=2)


def test_an_unknown_token_is_refused(cluster: Cluster) -> None:
    client = openai.OpenAI(base_url=f"{cluster.gateway.url}/v1", api_key="tlr_nope")

    with pytest.raises(openai.AuthenticationError):
        client.completions.create(model="completion", prompt="x", max_tokens=2)


def test_vllm_gets_the_fim_prompt_built_from_the_base_family() -> None:
    body = {"model": "m", "prompt": "def f(", "suffix": ")\n", "max_tokens": 4}

    sent = openai_body_for_vllm(body, "bigcode/starcoderbase-1b")

    assert "suffix" not in sent
    assert sent["prompt"] == "<fim_prefix>def f(<fim_suffix>)\n<fim_middle>"
    assert {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"} <= set(sent["stop"])


# vLLM needs a GPU and is not installable here: a stand-in with the two behaviours the gateway
# depends on — its `--api-key` check on /v1 and its refusal of `suffix` — records what it got.
@dataclass
class FakeVLLM:
    received: list[dict[str, Any]]
    url: str


@pytest.fixture
def fake_vllm() -> Iterator[FakeVLLM]:
    app = FastAPI()
    received: list[dict[str, Any]] = []

    @app.post("/v1/completions")
    async def completions(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {endpoint_token(KEY, TEAM)}":
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        body = await request.json()
        if "suffix" in body:
            return JSONResponse({"error": "suffix is not currently supported"}, status_code=400)
        received.append(body)
        choice = {"index": 0, "text": "return a", "finish_reason": "length", "logprobs": None}
        return JSONResponse(
            {"id": "c", "object": "text_completion", "created": 0, "model": body["model"],
             "choices": [choice]}
        )  # fmt: skip

    live = start_server(app)
    yield FakeVLLM(received, live.url)
    live.stop()


@pytest.fixture
def vllm_cluster(
    session: Session, routing: Routing, settings: Settings, fake_vllm: FakeVLLM
) -> Iterator[Cluster]:
    tenant = create_tenant(session, TEAM)
    create_version(session, tenant.team, "completion", 1)
    access = team_for(session, authenticate(session, tenant.owner_token), TEAM, Role.admin)
    body = EndpointCreate(name="completion", adapter="completion", version=1, backend="vllm")
    endpoint_service.publish(session, access, body, serves=SERVED_BASE)
    token = create_token(session, tenant.owner, team=tenant.team, scopes=("inference",))
    record_backend(session, settings, f"tailor-team-{TEAM}", "completion", fake_vllm.url)
    session.commit()
    with gateway(routing) as live:
        yield Cluster(live, token)


def test_a_vllm_endpoint_gets_the_fim_prompt_and_the_teams_key(
    vllm_cluster: Cluster, fake_vllm: FakeVLLM
) -> None:
    client = openai.OpenAI(
        base_url=f"{vllm_cluster.gateway.url}/v1", api_key=vllm_cluster.token, max_retries=0
    )

    out = client.completions.create(
        model="completion-tiny-starcoder", prompt="def f(a):\n    ", suffix="\n", max_tokens=4
    )

    [sent] = fake_vllm.received
    assert out.choices[0].text == "return a"
    assert sent["model"] == "completion"  # the alias resolved to the name vLLM serves
    assert sent["prompt"] == "<fim_prefix>def f(a):\n    <fim_suffix>\n<fim_middle>"


def test_a_vllm_endpoint_refuses_protocols_it_does_not_speak(vllm_cluster: Cluster) -> None:
    answer = httpx.post(
        f"{vllm_cluster.gateway.url}/tgi/completion/generate",
        json={"inputs": "def ", "parameters": {"max_new_tokens": 4}},
        headers={"Authorization": f"Bearer {vllm_cluster.token}"},
    )

    assert answer.status_code == 400
    assert "OpenAI" in answer.json()["error"]
