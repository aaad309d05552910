"""Every pod the chart renders is run: its command starts and answers, as on a node.

The chart is rendered with the default values and with the production values file; every
Deployment, StatefulSet, Job and (`helm test`) Pod in the output is found there, never
listed here, and handed to the harness kubelet (tests/support/release.py). A Deployment's
readiness probe must answer and a Job must exit 0, against the machine's PostgreSQL (a
database of the test's own), its Redis, moto's S3 server and the kmock API server. A new
template whose command the `tailor` CLI (or the image) does not have fails here.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tailor.storage import S3Store
from tests.charts.conftest import PRODUCTION, Helm, render
from tests.charts.conftest import helm as helm
from tests.operator.conftest import Kube
from tests.support.kubelet import PodFailed
from tests.support.release import Release, admin_secrets, fresh_database, release_values

pytestmark = pytest.mark.asyncio


@pytest.fixture
def database() -> Any:
    """A database of the test's own on the machine's PostgreSQL (its name)."""
    yield from fresh_database()


def _manifests(
    helm: Helm, which: str, tmp_path: Path, database: str, s3_store: S3Store, s3_endpoint: str
) -> list[dict[str, Any]]:
    values = [PRODUCTION] if which == "production" else []
    overlay = release_values(tmp_path, which == "production", database, s3_store, s3_endpoint)
    return render(helm, *values, overlay)


@pytest.mark.parametrize("which", ["defaults", "production"])
async def test_every_workload_the_chart_renders_runs_and_answers(
    which: str,
    helm: Helm,
    kube: Kube,
    kubeconfig: Path,
    database: str,
    s3_store: S3Store,
    s3_endpoint: str,
    tmp_path: Path,
) -> None:
    manifests = _manifests(helm, which, tmp_path, database, s3_store, s3_endpoint)
    release = Release(manifests, tmp_path / "node", kube.url, kubeconfig)
    if which == "production":
        release.add_objects(admin_secrets(database))

    try:
        ran = await release.run_all()
    finally:
        release.stop()

    workloads = {
        m["metadata"]["name"]
        for m in manifests
        if m["kind"] in ("Deployment", "StatefulSet", "Job", "Pod")
    }
    assert set(ran) == workloads


def _unknown_command(container: dict[str, Any]) -> None:
    container["command"] = ["tailor", "db", "upgrade-everything"]


def _unknown_image(container: dict[str, Any]) -> None:
    container["image"] = "example.com/unknown:1"


@pytest.mark.parametrize(
    ("breaks", "failure"),
    [(_unknown_command, "exited 2"), (_unknown_image, "cannot run here")],
    ids=["a-command-the-cli-lacks", "an-image-that-cannot-run-here"],
)
async def test_a_job_the_node_cannot_run_fails(
    helm: Helm,
    kube: Kube,
    kubeconfig: Path,
    database: str,
    s3_store: S3Store,
    s3_endpoint: str,
    tmp_path: Path,
    breaks: Any,
    failure: str,
) -> None:
    manifests = _manifests(helm, "defaults", tmp_path, database, s3_store, s3_endpoint)
    [migrate] = [m for m in manifests if m["kind"] == "Job"]
    broken = copy.deepcopy(migrate)
    breaks(broken["spec"]["template"]["spec"]["containers"][0])
    release = Release(manifests, tmp_path / "node", kube.url, kubeconfig)

    try:
        with pytest.raises(PodFailed, match=failure):
            release.run_job(broken)
    finally:
        release.stop()
