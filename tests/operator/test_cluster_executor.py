"""The cluster executor end to end: API → worker → FineTuneJob → operator → Job → API.

The API runs for real (TestClient for people, a uvicorn server for the operator's status
sink) on its own PostgreSQL schema; the worker function submits the FineTuneJob to the
kmock emulator; kopf runs Tailor's operator against it. The test plays Kueue and the
kubelet: it admits the Job, runs the training entrypoint the pod would run on the spec the
operator mounted, and marks the Job complete. What a user sees — job state, the stored
adapter, the published endpoint — comes back through the API.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from sqlalchemy import select
from tailor_operator.resources import FineTuneJobSpec

from tailor.db.models import Dataset, Job, JobState
from tailor.demo.sample_data import write_dataset
from tailor.demo.tiny import tiny_base_cached
from tailor.services.finetunes import submit
from tailor.services.finetunes.run import run_finetune_job
from tailor.stages.train.entrypoint import run_training
from tailor.stages.train.spec import TrainSpec
from tests.api.conftest import queued_tasks
from tests.charts.validation import validate_manifest
from tests.conftest import create_tenant, register_base
from tests.operator.conftest import Kube, Platform

CACHE_ROOT = Path(os.environ.get("TAILOR_TEST_CACHE", "/tmp/tailor-test-cache"))


def _train_spec(team: str, base_model: str = "bigcode/starcoderbase-1b", **extra: Any) -> TrainSpec:
    return TrainSpec(
        base_model=base_model, team=team, dataset_id="ds-1", adapter_name="style", **extra
    )


# --- the FineTuneJob the executor submits ---------------------------------------------


def test_the_submitted_resource_is_one_the_operator_and_the_crd_accept() -> None:
    spec = _train_spec("search", method="full", num_processes=4, max_steps=10)

    manifest = submit.finetune_resource("fi-0123456789ab", spec, "tailor-team-search")

    validate_manifest(manifest)  # the generated CRD's schema, strictly
    parsed = FineTuneJobSpec.model_validate(manifest["spec"])
    assert parsed.train == spec  # the TrainSpec travels unchanged
    assert parsed.jobId == "fi-0123456789ab"
    assert parsed.resources.gpus == 4  # the operator picks the nodes from the GPU type


def test_adapter_methods_ask_for_one_gpu() -> None:
    assert submit.train_resources(_train_spec("search", method="qlora")) == {"gpus": 1}


# --- end to end ---------------------------------------------------------------------------


def _team_with_dataset(platform: Platform) -> tuple[str, dict[str, str], str]:
    """A team (slug, owner auth) with a harvested dataset in the store."""
    with platform.sessions() as session:
        tenant = create_tenant(session)
        harvest = Job(uid="ha-e2e", team_id=tenant.team.id, kind="harvest", spec={})
        harvest.state = JobState.succeeded
        session.add(harvest)
        session.flush()
        dataset = Dataset(
            uid="ds-1",
            team_id=tenant.team.id,
            job_id=harvest.id,
            prefix=f"teams/{tenant.slug}/datasets/ds-1/",
        )
        session.add(dataset)
        session.commit()
        slug, auth = tenant.slug, tenant.auth()
    sources = Path(__file__).resolve().parents[2] / "tailor" / "stages" / "train"
    files = sorted(sources.glob("*.py"))[:8]
    write_dataset(platform.store, slug, "ds-1", files, root=sources)
    return slug, auth, f"tailor-team-{slug}"


async def _job_state(
    platform: Platform, slug: str, auth: dict[str, str], uid: str, state: str
) -> dict[str, Any]:
    """Poll the API until the job reaches `state` (the operator reports asynchronously)."""
    for _ in range(400):
        job = platform.client.get(f"/v1/teams/{slug}/jobs/{uid}", headers=auth).json()
        if job["state"] == state or job["state"] in ("failed", "cancelled"):
            break
        await asyncio.sleep(0.05)
    assert job["state"] == state, job
    return job


def test_the_api_refuses_a_process_count_that_does_not_fill_whole_nodes(
    platform: Platform,
) -> None:
    slug, auth, _ = _team_with_dataset(platform)
    body = _train_spec(slug, method="full", num_processes=12).model_dump(
        mode="json", exclude={"adapter_version"}
    )

    refused = platform.client.post(f"/v1/teams/{slug}/finetunes", json=body, headers=auth)
    sixteen = {**body, "num_processes": 16}
    accepted = platform.client.post(f"/v1/teams/{slug}/finetunes", json=sixteen, headers=auth)

    assert refused.status_code == 422, refused.text
    assert "12 GPUs do not fill whole" in refused.text
    assert "multiple of 8" in refused.text
    assert accepted.status_code == 202, accepted.text  # 2 nodes of 8
    assert queued_tasks(platform.broker) == [("tailor.finetune", [accepted.json()["id"]])]


@pytest.mark.asyncio
@pytest.mark.slow
async def test_a_finetune_runs_on_the_cluster_and_its_adapter_is_published(
    kube: Kube, platform: Platform, operator: None, kubeconfig: Path, tmp_path: Path
) -> None:
    slug, auth, namespace = _team_with_dataset(platform)
    tiny = tiny_base_cached(CACHE_ROOT)
    with platform.sessions() as session:
        register_base(session, "tiny-base", tiny)  # the platform admin's catalog entry
    body = _train_spec(
        slug, "tiny-base", method="lora", max_steps=2, seq_len=64, grad_accum=1,
    ).model_dump(mode="json", exclude={"adapter_version"})  # fmt: skip

    # A team lead starts a fine-tune; the API queues the worker task.
    created = platform.client.post(f"/v1/teams/{slug}/finetunes", json=body, headers=auth)
    assert created.status_code == 202, created.text
    uid = created.json()["id"]
    assert queued_tasks(platform.broker) == [("tailor.finetune", [uid])]

    # The worker submits a FineTuneJob instead of training here; the operator makes a Job.
    args = (platform.sessions, platform.store, platform.settings, uid)
    await asyncio.to_thread(run_finetune_job, *args)
    job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/{uid}"
    k8s_job = await kube.wait_for(job_path, lambda obj: obj is not None)
    assert k8s_job is not None
    assert k8s_job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "tailor"
    assert (await _job_state(platform, slug, auth, uid, "queued"))["error"] is None

    # Kueue admits it and the pod starts: the API shows the job running.
    await kube.patch(job_path, {"spec": {"suspend": False}, "status": {"active": 1}})
    await _job_state(platform, slug, auth, uid, "running")

    # The kubelet's part: the pod runs the training entrypoint on the mounted spec.
    configmap = await kube.get(f"/api/v1/namespaces/{namespace}/configmaps/{uid}-spec")
    assert configmap is not None
    spec = TrainSpec.model_validate(json.loads(configmap["data"]["spec.json"]))
    # The pod gets the spec as submitted, with the catalog's files for its base.
    assert spec.model_dump() == created.json()["spec"] | {
        "num_processes": 1,
        "base_source": str(tiny),
    }
    run = {"job_id": uid, "work_dir": tmp_path / "pod"}
    await asyncio.to_thread(run_training, spec, platform.store, **run)
    complete = {"type": "Complete", "status": "True", "reason": "CompletionsReached"}
    await kube.patch(job_path, {"status": {"active": 0, "succeeded": 1, "conditions": [complete]}})

    # The operator reports the success; the API registers the stored adapter.
    done = await _job_state(platform, slug, auth, uid, "succeeded")
    assert done["result"]["version"] == 1
    versions = platform.client.get(f"/v1/teams/{slug}/adapters/style/versions", headers=auth)
    assert [v["version"] for v in versions.json()] == [1]
    events = platform.client.get(f"/v1/teams/{slug}/jobs/{uid}/events", headers=auth).json()
    assert any(e["message"].startswith("cluster: Running") for e in events)

    # And the team publishes it (no evaluation has run yet, so the gate is overridden).
    publish = {"name": "style", "adapter": "style", "version": 1, "override_gate": True}
    endpoint = platform.client.post(f"/v1/teams/{slug}/endpoints", json=publish, headers=auth)
    assert endpoint.status_code == 201, endpoint.text
    listed = platform.client.get(f"/v1/teams/{slug}/endpoints/style", headers=auth).json()
    assert listed["version"] == 1


async def _running_on_cluster(kube: Kube, platform: Platform) -> tuple[str, dict[str, str], str]:
    """A fine-tune the worker submitted and Kueue admitted: (team, auth, job id)."""
    slug, auth, namespace = _team_with_dataset(platform)
    body = _train_spec(slug, max_steps=1).model_dump(mode="json", exclude={"adapter_version"})
    uid = platform.client.post(f"/v1/teams/{slug}/finetunes", json=body, headers=auth).json()["id"]
    args = (platform.sessions, platform.store, platform.settings, uid)
    await asyncio.to_thread(run_finetune_job, *args)
    job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/{uid}"
    await kube.wait_for(job_path, lambda obj: obj is not None)
    await kube.patch(job_path, {"spec": {"suspend": False}, "status": {"active": 1}})
    await _job_state(platform, slug, auth, uid, "running")
    return slug, auth, uid


@pytest.mark.asyncio
async def test_cancelling_a_cluster_finetune_through_the_api_removes_its_workload(
    kube: Kube, platform: Platform, operator: None, kubeconfig: Path
) -> None:
    slug, auth, uid = await _running_on_cluster(kube, platform)
    namespace = f"tailor-team-{slug}"

    # Off the test's loop: the API calls the emulator, which is served from this loop.
    url = f"/v1/teams/{slug}/jobs/{uid}/cancel"
    cancel = await asyncio.to_thread(platform.client.post, url, headers=auth)

    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["cancel_requested"] is True
    ftj = f"/apis/tailor.dev/v1alpha1/namespaces/{namespace}/finetunejobs/{uid}"
    await kube.wait_for(ftj, lambda obj: obj is None)
    assert await kube.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{uid}") is None
    await _job_state(platform, slug, auth, uid, "cancelled")  # the operator's report
    events = platform.client.get(f"/v1/teams/{slug}/jobs/{uid}/events", headers=auth).json()
    assert any(e["message"].startswith("deleted FineTuneJob") for e in events)


@pytest.mark.asyncio
async def test_a_cluster_finetune_not_yet_submitted_is_cancelled_at_once(
    kube: Kube, platform: Platform, kubeconfig: Path
) -> None:
    slug, auth, uid = _queued_finetune(platform)

    url = f"/v1/teams/{slug}/jobs/{uid}/cancel"
    cancelled = (await asyncio.to_thread(platform.client.post, url, headers=auth)).json()
    await asyncio.to_thread(run_finetune_job, platform.sessions, platform.store,
                            platform.settings, uid)  # fmt: skip

    assert cancelled["state"] == "cancelled"
    # The worker's late delivery submits nothing: the job was already final.
    path = f"/apis/tailor.dev/v1alpha1/namespaces/tailor-team-{slug}/finetunejobs/{uid}"
    assert await kube.get(path) is None


def test_a_cancel_the_cluster_cannot_take_changes_nothing(platform: Platform) -> None:
    slug, auth, uid = _queued_finetune(platform)
    unreachable = k8s.Configuration()
    unreachable.host = "http://127.0.0.1:9"
    platform.client.app.state.kube = k8s.ApiClient(unreachable)

    answer = platform.client.post(f"/v1/teams/{slug}/jobs/{uid}/cancel", headers=auth)

    assert answer.status_code == 503
    assert answer.json()["type"].endswith("/cluster-unavailable")
    assert "cancel it again" in answer.json()["detail"]
    job = platform.client.get(f"/v1/teams/{slug}/jobs/{uid}", headers=auth).json()
    assert (job["state"], job["cancel_requested"]) == ("queued", False)


def _queued_finetune(platform: Platform) -> tuple[str, dict[str, str], str]:
    slug, auth, _ = _team_with_dataset(platform)
    body = _train_spec(slug, max_steps=1).model_dump(mode="json", exclude={"adapter_version"})
    uid = platform.client.post(f"/v1/teams/{slug}/finetunes", json=body, headers=auth).json()["id"]
    return slug, auth, uid


def _report(platform: Platform, uid: str, token: str, **body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    return platform.client.post(f"/v1/internal/jobs/{uid}/status", json=body, headers=headers)


def test_only_the_operator_token_may_report_a_status(platform: Platform) -> None:
    slug, auth, uid = _queued_finetune(platform)
    team_token = auth["Authorization"].removeprefix("Bearer ")

    refused = _report(platform, uid, team_token, phase="Running")
    unknown = _report(platform, uid, platform.operator_token + "x", phase="Running")

    assert refused.status_code == 403
    assert unknown.status_code == 401
    job = platform.client.get(f"/v1/teams/{slug}/jobs/{uid}", headers=auth).json()
    assert job["state"] == "queued"
    accepted = _report(platform, uid, platform.operator_token, phase="Running")
    assert (accepted.status_code, accepted.json()["state"]) == (200, "running")


def test_a_platform_admin_may_report_a_status_too(platform: Platform) -> None:
    _slug, _auth, uid = _queued_finetune(platform)

    answer = _report(platform, uid, platform.admin_token, phase="Failed", reason="NodeLost")

    assert (answer.status_code, answer.json()["state"]) == (200, "failed")


def test_a_repeated_phase_is_one_change_and_a_failure_keeps_its_reason(
    platform: Platform,
) -> None:
    slug, auth, uid = _queued_finetune(platform)
    token = platform.operator_token

    for _ in range(2):  # delivery is at-least-once
        assert _report(platform, uid, token, phase="Running").status_code == 200
    reason = "InvalidSpec: dataset ds-1 has no training rows"
    failed = _report(platform, uid, token, phase="Failed", reason=reason).json()
    late = _report(platform, uid, token, phase="Succeeded").json()

    assert failed["state"] == late["state"] == "failed"  # final states stay final
    assert failed["error"] == reason
    events = platform.client.get(f"/v1/teams/{slug}/jobs/{uid}/events", headers=auth).json()
    assert [e["message"] for e in events].count("cluster: Running") == 1


def test_a_status_for_an_unknown_job_is_not_found(platform: Platform) -> None:
    answer = _report(platform, "fi-000000000000", platform.operator_token, phase="Running")

    assert answer.status_code == 404


class MissingNamespace(BaseHTTPRequestHandler):
    """An API server whose team namespace does not exist: every create answers 404."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status = {"kind": "Status", "code": 404, "message": 'namespaces "tailor-team-x" not found'}
        payload = json.dumps(status).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_cluster_without_the_team_namespace_fails_the_job_with_the_fix(
    platform: Platform,
) -> None:
    slug, auth, uid = _queued_finetune(platform)
    server = ThreadingHTTPServer(("127.0.0.1", 0), MissingNamespace)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    configuration = k8s.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with platform.sessions.begin() as session:
            job = session.scalars(select(Job).where(Job.uid == uid)).one()
            submit.submit_finetune(session, platform.settings, job, k8s.ApiClient(configuration))
    finally:
        server.shutdown()
        server.server_close()

    job_out = platform.client.get(f"/v1/teams/{slug}/jobs/{uid}", headers=auth).json()
    assert job_out["state"] == "failed"
    assert "create the team's Team resource" in job_out["error"]
