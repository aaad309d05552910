"""Operator fixtures: config, spec factories, and a kopf reactor running against kmock.

`KubernetesEmulator` (kmock) is an in-memory Kubernetes API over HTTP. kopf and the
operator's own client talk to it exactly as to a cluster; the tests play the controllers
that are not there (the Job controller, Kueue, the kubelet) by patching workload status.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import socket
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis
import uvicorn
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

ROOT = Path(__file__).resolve().parents[2]
try:
    import tailor_operator  # noqa: F401  (installed with the project)
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "operator"))

import kmock  # noqa: E402
import kopf  # noqa: E402
from kmock._internal import parsing as kmock_parsing  # noqa: E402
from tailor_operator.config import ObjectStore, OperatorConfig, TeamAccess  # noqa: E402
from tailor_operator.crds import generate_crds  # noqa: E402
from tailor_operator.kubeapi import Cluster  # noqa: E402
from tailor_operator.sink import HttpStatusSink, RecordingSink, StatusSink  # noqa: E402

from api.main import create_app  # noqa: E402
from tailor.config import Settings  # noqa: E402
from tailor.queue import make_sender  # noqa: E402
from tailor.storage import FileStore  # noqa: E402
from tests.conftest import (  # noqa: E402
    _postgres_engine,
    create_token,
    create_user,
    redis_db,
    register_base,
)

TEAM = "search"
NAMESPACE = f"tailor-team-{TEAM}"
_VERBS = {"list", "watch", "get", "create", "patch", "update", "delete"}

# What the emulator serves: kopf's backbone, Tailor's CRs, and what the operator creates.
RESOURCES: dict[str, tuple[str, bool, set[str]]] = {
    "apiextensions.k8s.io/v1/customresourcedefinitions": (
        "CustomResourceDefinition", False, set()
    ),
    "v1/namespaces": ("Namespace", False, set()),
    "v1/events": ("Event", True, set()),
    "v1/configmaps": ("ConfigMap", True, set()),
    "v1/pods": ("Pod", True, {"status"}),
    "v1/secrets": ("Secret", True, set()),
    "v1/serviceaccounts": ("ServiceAccount", True, set()),
    "rbac.authorization.k8s.io/v1/rolebindings": ("RoleBinding", True, set()),
    "v1/services": ("Service", True, set()),
    "v1/resourcequotas": ("ResourceQuota", True, set()),
    "batch/v1/jobs": ("Job", True, {"status"}),
    "jobset.x-k8s.io/v1alpha2/jobsets": ("JobSet", True, {"status"}),
    "kueue.x-k8s.io/v1beta2/workloads": ("Workload", True, {"status"}),
    "apps/v1/deployments": ("Deployment", True, {"status"}),
    "autoscaling/v2/horizontalpodautoscalers": ("HorizontalPodAutoscaler", True, set()),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True, set()),
    "kueue.x-k8s.io/v1beta2/localqueues": ("LocalQueue", True, set()),
    "kueue.x-k8s.io/v1beta2/clusterqueues": ("ClusterQueue", False, set()),
    "tailor.dev/v1alpha1/finetunejobs": ("FineTuneJob", True, {"status"}),
    "tailor.dev/v1alpha1/inferenceendpoints": ("InferenceEndpoint", True, {"status"}),
    "tailor.dev/v1alpha1/teams": ("Team", False, {"status"}),
}  # fmt: skip


@pytest.fixture
def operator_config() -> OperatorConfig:
    """The platform config a Helm install would render (S3 store, per-team Secrets, Kueue on,
    A100 pool)."""
    return OperatorConfig(
        objectStore=ObjectStore(
            url="s3://tailor-artifacts/prod", endpointUrl="http://minio.tailor.svc:9000"
        ),
        teamAccess=TeamAccess(
            clusterRole="tailor-operator-team",
            serviceAccount="tailor-operator",
            serviceAccountNamespace="tailor",
        ),
    )


def train_spec(**overrides: Any) -> dict[str, Any]:
    """A TrainSpec body for team `search`."""
    spec = {
        "base_model": "bigcode/starcoderbase-1b",
        "team": TEAM,
        "dataset_id": "ds-1",
        "adapter_name": "search-style",
    }
    spec.update(overrides)
    return spec


def finetune_spec(**overrides: Any) -> dict[str, Any]:
    """A FineTuneJob spec: one A100, QLoRA, with a Tailor job id."""
    spec: dict[str, Any] = {"team": TEAM, "jobId": "job-42", "train": train_spec()}
    spec.update(overrides)
    return spec


def endpoint_spec(**overrides: Any) -> dict[str, Any]:
    """An InferenceEndpoint spec serving one adapter with the Tailor engine."""
    spec: dict[str, Any] = {
        "team": TEAM,
        "base_model": "bigcode/starcoderbase-1b",
        "adapters": [
            {
                "name": "search-style",
                "version": "1",
                "prefix": f"teams/{TEAM}/adapters/search-style/1/",
            }
        ],
        "replicas": 2,
    }
    spec.update(overrides)
    return spec


def custom_resource(kind: str, name: str, spec: dict[str, Any], namespace: str | None) -> dict:
    """A Tailor custom resource body, as kubectl or the Tailor API would send it."""
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "tailor.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}


@dataclass
class Kube:
    """The emulated API server, used over HTTP like kubectl would."""

    emulator: Any

    @property
    def url(self) -> str:
        return str(self.emulator.url).rstrip("/")

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        async with self.emulator.request(method, path, json=body, headers=headers) as resp:
            payload = await resp.json(content_type=None)
            return resp.status, payload

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, payload = await self.request("POST", path, body)
        assert status in (200, 201), payload
        return payload

    async def get(self, path: str) -> dict[str, Any] | None:
        status, payload = await self.request("GET", path)
        return payload if status == 200 else None

    async def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, payload = await self.request("PATCH", path, body)
        assert status == 200, payload
        return payload

    async def delete(self, path: str) -> None:
        status, payload = await self.request("DELETE", path)
        assert status == 200, payload

    async def wait_for(
        self, path: str, check: Callable[[dict[str, Any] | None], bool], timeout: float = 60.0
    ) -> dict[str, Any] | None:
        """Poll an object until `check` accepts it (None: the object is absent).

        It returns as soon as it does; the default is long for a CI machine busy on both cores.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        obj = await self.get(path)
        while not check(obj):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{path} never reached the expected state; last: {obj}")
            await asyncio.sleep(0.05)
            obj = await self.get(path)
        return obj


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator plus what kopf needs from an API server's object metadata.

    kmock stores bodies as sent: created objects get a `uid` here (owner references need
    one), and every write gets a new `resourceVersion`, as etcd gives one. kopf needs it
    to tell a stale watch event from a fresh one: with one version for every state, it
    took each event echoing its own status patches for a change still to handle, and
    handled one update again and again, for seconds on a busy machine.

    kopf's JSON patches test the version they read. kopf lists, then watches, and kmock's
    watch lists again, so an object that exists when kopf starts reaches it twice; the
    second copy's test failing here left kopf waiting for an event that did not come.
    Those `test` operations are dropped, so a stale copy's patch (a finaliser kopf just
    added) applies again, as it did before versions moved.
    """

    async def _handle(self, request: Any) -> Any:
        data, version = request.data, str(next(_VERSIONS))
        if request.action == kmock.action.CREATE and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta["resourceVersion"] = version
        elif request.action == kmock.action.UPDATE and isinstance(data, dict):
            data.setdefault("metadata", {})["resourceVersion"] = version
        elif request.action == kmock.action.UPDATE and isinstance(data, list):
            data[:] = [op for op in data if op.get("op") != "test"]
            data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})
        return await super()._handle(request)


_VERSIONS = itertools.count(1)


def _parse_path_with_namespaces(path: str) -> Any:
    """kmock 0.8's path parser, plus the Namespace objects themselves.

    kmock reads `/api/v1/namespaces/<x>` as the namespace `<x>` with no resource, so a
    Namespace cannot be created, read or deleted; the Team handler does all three.
    """
    parts = path.split("?")[0].strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 5:
        name = parts[3] if len(parts) > 3 else None
        sub = parts[4] if len(parts) > 4 and parts[4] in ("status", "finalize") else None
        if len(parts) <= 4 or sub:
            return kmock_parsing.ParsedPath("", "v1", "namespaces", None, name, sub)
    return _kmock_parse_path(path)


_kmock_parse_path = kmock_parsing.parse_path


@pytest_asyncio.fixture
async def kube(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kube]:
    """The emulator with every resource the operator reads or writes, CRDs installed."""
    monkeypatch.setattr(kmock_parsing, "parse_path", _parse_path_with_namespaces)
    async with Emulator() as emulator, kmock.Server(emulator):
        for key, (kind, namespaced, subresources) in RESOURCES.items():
            emulator.resources[key] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, verbs=_VERBS, subresources=subresources
            )
        api = Kube(emulator)
        for crd in generate_crds():
            await api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        yield api


@dataclass
class Operator:
    """A running kopf reactor with Tailor's handlers and a recording status sink."""

    sink: RecordingSink
    cluster: Cluster


@asynccontextmanager
async def operator_against(
    kube: Kube, config: OperatorConfig, sink: StatusSink
) -> AsyncIterator[Cluster]:
    """Run kopf (cluster-wide, standalone) with Tailor's handlers against the emulator."""
    import tailor_operator.main  # noqa: F401  (registers the handlers)

    config = config.model_copy(update={"kubeServer": kube.url})
    cluster = Cluster.connect(kube.url)
    memo = kopf.Memo(config=config, cluster=cluster, sink=sink)
    settings = kopf.OperatorSettings()
    ready, stop = threading.Event(), threading.Event()

    def reactor() -> None:
        # A loop of its own: kopf treats every task of its loop as its own on exit, and
        # the emulator's streaming handlers live in the test's loop.
        coro = kopf.operator(
            clusterwide=True,
            standalone=True,
            settings=settings,
            memo=memo,
            ready_flag=ready,
            stop_flag=stop,
        )
        asyncio.run(coro)

    thread = threading.Thread(target=reactor, name="kopf", daemon=True)
    thread.start()
    assert await asyncio.to_thread(ready.wait, 15), "kopf did not start"
    try:
        yield cluster
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 15)


@pytest_asyncio.fixture
async def running_operator(kube: Kube, operator_config: OperatorConfig) -> AsyncIterator[Operator]:
    """The operator against the emulator, reporting to a recording sink."""
    sink = RecordingSink()
    async with operator_against(kube, operator_config, sink) as cluster:
        yield Operator(sink=sink, cluster=cluster)


# --- the platform around the operator: API, database, store, broker ----------------------

REDIS_DB = redis_db("operator")


@dataclass
class Platform:
    """The API, its database and store, and the worker's view of them."""

    client: TestClient
    api_url: str
    operator_token: str
    admin_token: str
    sessions: sessionmaker[Session]
    store: FileStore
    settings: Settings
    broker: redis.Redis


@pytest.fixture
def engine() -> Iterator[Engine]:
    """A migrated PostgreSQL schema of its own: the API and the worker commit for real."""
    yield from _postgres_engine()


def _serve(app: FastAPI) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def platform(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    """Tailor configured for the cluster executor, with the chart's operator token.

    The token travels as the chart passes it to the API and the operator alike: the
    TAILOR_OPERATOR_TOKEN environment variable.
    """
    operator_token = secrets.token_urlsafe(36)
    monkeypatch.setenv("TAILOR_OPERATOR_TOKEN", operator_token)
    settings = Settings(workspace=tmp_path / "ws", executor="kubernetes")
    assert settings.operator_token is not None
    settings.ensure_workspace()
    store = FileStore(tmp_path / "objects")
    app = create_app(settings, engine=engine, store=store)
    broker_url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    app.state.sender = make_sender(Settings(broker_url=broker_url, result_backend=broker_url))
    broker = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    broker.flushdb()
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    with sessions() as session:
        admin = create_user(session, admin=True)
        token = create_token(session, admin, scopes=("admin",))
        session.commit()
        register_base(session, "bigcode/starcoderbase-1b")  # what the tests fine-tune
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            for api_url in _serve(app):
                yield Platform(
                    client, api_url, operator_token, token, sessions, store, settings, broker
                )
    finally:
        broker.flushdb()


@pytest_asyncio.fixture
async def operator(kube: Kube, operator_config: Any, platform: Platform) -> AsyncIterator[None]:
    """The operator reporting to the running API with the platform's operator token."""
    sink = HttpStatusSink.from_env(platform.api_url)  # reads TAILOR_OPERATOR_TOKEN
    async with operator_against(kube, operator_config, sink):
        yield


@pytest.fixture
def kubeconfig(kube: Kube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The worker's kubeconfig pointing at the emulator (as a cluster admin's would)."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": kube.url}}],
                "users": [{"name": "worker", "user": {"token": "worker-token"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "worker"}}],
                "current-context": "kmock",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return path


async def team_store_secret(kube: Kube, team: str) -> None:
    """What the admin provides per team: object-store keys scoped to the team's prefix."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "tailor-object-store", "namespace": f"tailor-team-{team}"},
        "data": {"TAILOR_S3_ACCESS_KEY_ID": "a2V5", "TAILOR_S3_SECRET_ACCESS_KEY": "c2VjcmV0"},
    }
    await kube.create(f"/api/v1/namespaces/tailor-team-{team}/secrets", secret)


async def namespace_objects(kube: Kube, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The ConfigMaps and Secrets of a namespace: what the kubelet reads for its pods."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, plural in (("ConfigMap", "configmaps"), ("Secret", "secrets")):
        status, listing = await kube.request("GET", f"/api/v1/namespaces/{namespace}/{plural}")
        assert status == 200, listing
        for item in listing["items"]:
            found[(kind, item["metadata"]["name"])] = item
    return found


def upload_tiny_base(store: Any, cache_root: Path) -> str:
    """The tiny base model's files in the bucket; their s3:// prefix (a catalog source)."""
    from tailor.demo.tiny import tiny_base_cached

    local = tiny_base_cached(cache_root)
    for path in local.rglob("*"):
        if path.is_file():
            store.upload_file(path, f"models/tiny/{path.relative_to(local)}")
    return f"{store.url}models/tiny"
