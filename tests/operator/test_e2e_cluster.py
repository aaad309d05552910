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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tailor.storage import S3Store
from tests.charts.conftest import Helm, render
from tests.charts.conftest import helm as helm
from tests.operator.conftest import Kube
from tests.support.kubelet import Pod, run_exec
from tests.support.release import Release, fresh_database, release_values

pytestmark = pytest.mark.asyncio

TEAM = "search"
NAMESPACE = f"tailor-team-{TEAM}"


@pytest.fixture
def database() -> Any:
    """A database of the test's own on the machine's PostgreSQL (its name)."""
    yield from fresh_database()


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
    overlay = release_values(tmp_path, False, database, s3_store, s3_endpoint)
    manifests = render(helm, overlay)
    running = Release(manifests, tmp_path / "node", kube.url, kubeconfig)
    for obj in running.objects.values():
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


async def test_a_team_created_through_the_api_gets_its_cluster_objects(
    release: Release, kube: Kube
) -> None:
    api = httpx.Client(base_url=_pod(release, "api").url("http"), timeout=60)
    admin = {"Authorization": f"Bearer {await asyncio.to_thread(_admin_token, release)}"}

    created = api.post("/v1/teams", json={"slug": TEAM, "name": "Search"}, headers=admin)

    assert created.status_code == 201, created.text
    # The worker pod syncs the Team resource; the operator pod reconciles its namespace.
    team = await kube.wait_for(
        f"/apis/tailor.dev/v1alpha1/teams/{TEAM}",
        lambda t: bool(t and (t.get("status") or {}).get("phase") == "Ready"),
        timeout=120,
    )
    assert team is not None
    assert await kube.get(f"/api/v1/namespaces/{NAMESPACE}") is not None
    queue = f"/apis/kueue.x-k8s.io/v1beta1/namespaces/{NAMESPACE}/localqueues/tailor"
    assert await kube.get(queue) is not None
