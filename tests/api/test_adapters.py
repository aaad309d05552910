"""Adapter operations through the API: compose, export, transfer and import start jobs.

The jobs themselves run in tests/adapters/test_jobs.py; here: who may start them, what
is refused at the door (with nothing stored or queued), and what gets queued.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from safetensors.numpy import save as save_safetensors
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from api.main import create_app
from tailor.cli.main import app as cli_app
from tailor.config import Settings
from tailor.services.adapters.service import register_version
from tailor.storage import FileStore, ObjectStore, S3Store
from tests.api.conftest import queued_tasks
from tests.conftest import Tenant, register_base

pytestmark = pytest.mark.usefixtures("catalog")  # the bases these tests name
MODULE = "base_model.model.transformer.h.0.attn.c_attn"


def register(
    session: Session,
    tenant: Tenant,
    name: str,
    version: int = 1,
    *,
    base: str = "tiny-base",
    store: ObjectStore | None = None,
    rank: int = 4,
) -> None:
    """A registered version; with `store`, its adapter_config.json is stored too."""
    register_version(
        session,
        team_id=tenant.team.id,
        team_slug=tenant.slug,
        name=name,
        version=version,
        manifest={"base_model": base, "dataset_id": "ds-1"},
    )
    session.commit()
    if store is not None:
        config = {"peft_type": "LORA", "r": rank, "lora_alpha": 8, "target_modules": ["c_attn"]}
        key = f"teams/{tenant.slug}/adapters/{name}/{version}/adapter_config.json"
        store.put_bytes(key, json.dumps(config).encode())


def jobs_of(client: TestClient, tenant: Tenant) -> list[dict[str, object]]:
    items: list[dict[str, object]] = client.get(
        f"/v1/teams/{tenant.slug}/jobs", headers=tenant.auth()
    ).json()["items"]
    return items


def compose_body(*inputs: tuple[str, int, float], combination: str = "linear") -> dict[str, object]:
    return {
        "inputs": [{"adapter": a, "version": v, "weight": w} for a, v, w in inputs],
        "combination": combination,
    }


# --- compose ---------------------------------------------------------------------------------


def test_compose_queues_a_job_with_the_inputs_as_lineage(
    client: TestClient, tenant: Tenant, session: Session, store: FileStore, broker: redis.Redis
) -> None:
    register(session, tenant, "code", store=store)
    register(session, tenant, "chat", store=store)
    resp = client.post(
        f"/v1/teams/{tenant.slug}/adapters/assistant/compose",
        json=compose_body(("code", 1, 1.0), ("chat", 1, 0.8)),
        headers=tenant.auth(),
    )
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert (job["kind"], job["state"]) == ("adapter-compose", "queued")
    assert [a["ref"] for a in job["spec"]["composition"]["adapters"]] == ["code@1", "chat@1"]
    assert job["spec"]["eval_dataset_id"] == "ds-1"
    assert queued_tasks(broker) == [("tailor.adapter.compose", [job["id"]])]


def test_composing_another_teams_adapter_is_not_found(
    client: TestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session: Session,
    broker: redis.Redis,
) -> None:
    register(session, tenant, "code")
    register(session, other_tenant, "secret")
    resp = client.post(
        f"/v1/teams/{tenant.slug}/adapters/assistant/compose",
        json=compose_body(("code", 1, 1.0), ("secret", 1, 1.0)),
        headers=tenant.auth(),
    )
    assert resp.status_code == 404 and "secret" in resp.json()["detail"]
    assert queued_tasks(broker) == [] and jobs_of(client, tenant) == []


def test_composing_different_bases_is_refused_and_nothing_queued(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    register(session, tenant, "code")
    register(session, tenant, "chat", base="other-base")
    resp = client.post(
        f"/v1/teams/{tenant.slug}/adapters/assistant/compose",
        json=compose_body(("code", 1, 1.0), ("chat", 1, 1.0)),
        headers=tenant.auth(),
    )
    problem = resp.json()
    assert resp.status_code == 422
    assert problem["type"].endswith("/adapter-base-mismatch")
    assert "other-base" in problem["detail"] and "Transfer" in problem["detail"]
    assert queued_tasks(broker) == [] and jobs_of(client, tenant) == []


def test_linear_over_different_ranks_is_refused_with_the_alternatives(
    client: TestClient, tenant: Tenant, session: Session, store: FileStore, broker: redis.Redis
) -> None:
    register(session, tenant, "code", store=store, rank=4)
    register(session, tenant, "chat", store=store, rank=8)
    resp = client.post(
        f"/v1/teams/{tenant.slug}/adapters/assistant/compose",
        json=compose_body(("code", 1, 1.0), ("chat", 1, 1.0)),
        headers=tenant.auth(),
    )
    problem = resp.json()
    assert resp.status_code == 422 and problem["type"].endswith("/adapter-rank-rule")
    assert "chat@1 has rank 8" in problem["detail"] and "'cat'" in problem["detail"]
    assert queued_tasks(broker) == []


def test_a_composition_with_only_zero_weights_is_refused(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    register(session, tenant, "code")
    register(session, tenant, "chat")
    resp = client.post(
        f"/v1/teams/{tenant.slug}/adapters/assistant/compose",
        json=compose_body(("code", 1, 0.0), ("chat", 1, 0.0)),
        headers=tenant.auth(),
    )
    assert resp.status_code == 422 and "non-zero" in resp.json()["detail"]
    assert queued_tasks(broker) == []


def test_a_viewer_cannot_compose(client: TestClient, tenant: Tenant, session: Session) -> None:
    register(session, tenant, "code")
    register(session, tenant, "chat")
    resp = client.post(
        f"/v1/teams/{tenant.slug}/adapters/assistant/compose",
        json=compose_body(("code", 1, 1.0), ("chat", 1, 1.0)),
        headers=tenant.auth("viewer"),
    )
    assert resp.status_code == 403


# --- transfer --------------------------------------------------------------------------------


def test_transfer_queues_a_job_for_a_new_adapter_on_the_target_base(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    register(session, tenant, "code")
    resp = client.post(
        f"/v1/teams/{tenant.slug}/adapters/code/versions/1/transfer",
        json={"target_base": "tiny-instruct"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["spec"]["target_name"] == "code-transfer"
    assert job["spec"]["source"] == {"name": "code", "version": 1}
    assert queued_tasks(broker) == [("tailor.adapter.transfer", [job["id"]])]


def test_transfer_onto_its_own_base_is_refused(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    register(session, tenant, "code")
    resp = client.post(
        f"/v1/teams/{tenant.slug}/adapters/code/versions/1/transfer",
        json={"target_base": "tiny-base"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 422 and "already on tiny-base" in resp.json()["detail"]
    assert queued_tasks(broker) == []


def test_transfer_into_an_adapter_of_another_base_is_refused(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    register(session, tenant, "code")
    register(session, tenant, "chat", base="third-base")
    resp = client.post(
        f"/v1/teams/{tenant.slug}/adapters/code/versions/1/transfer",
        json={"target_base": "tiny-instruct", "target_name": "chat"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 422 and "third-base" in resp.json()["detail"]
    assert queued_tasks(broker) == []


def base_dir(path: Path, **config: object) -> Path:
    """A local base model directory; only its config.json matters to the API."""
    path.mkdir()
    full = {"model_type": "gpt_bigcode", "architectures": ["GPTBigCodeForCausalLM"]}
    (path / "config.json").write_text(json.dumps(full | {"n_embd": 128, "n_layer": 2} | config))
    return path


def test_a_target_of_another_size_is_refused_at_request_time(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis, tmp_path: Path
) -> None:
    register_base(session, "tiny", base_dir(tmp_path / "tiny"))
    register_base(session, "tiny-wide", base_dir(tmp_path / "wider", n_embd=64))
    register_base(session, "tiny-sibling", base_dir(tmp_path / "sibling"))
    register(session, tenant, "code", base="tiny")
    url = f"/v1/teams/{tenant.slug}/adapters/code/versions/1/transfer"
    resp = client.post(url, json={"target_base": "tiny-wide"}, headers=tenant.auth())
    problem = resp.json()
    assert resp.status_code == 422 and problem["type"].endswith("/adapter-incompatible-base")
    assert "hidden size: target has n_embd=64" in problem["detail"]
    assert queued_tasks(broker) == []
    resp = client.post(url, json={"target_base": "tiny-sibling"}, headers=tenant.auth())
    assert resp.status_code == 202


def test_a_target_of_another_architecture_is_refused_from_the_catalog_alone(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    register_base(session, "llama-tiny", family="llama")
    register(session, tenant, "code")
    resp = client.post(
        f"/v1/teams/{tenant.slug}/adapters/code/versions/1/transfer",
        json={"target_base": "llama-tiny"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 422 and "gpt_bigcode vs llama" in resp.json()["detail"]
    assert queued_tasks(broker) == []


def test_another_teams_version_cannot_be_transferred(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, session: Session
) -> None:
    register(session, other_tenant, "code")
    resp = client.post(
        f"/v1/teams/{tenant.slug}/adapters/code/versions/1/transfer",
        json={"target_base": "tiny-instruct"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 404


# --- export ----------------------------------------------------------------------------------


def test_export_queues_a_job(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    register(session, tenant, "code")
    resp = client.post(
        f"/v1/teams/{tenant.slug}/adapters/code/versions/1/export",
        json={"max_shard_size": "200MB"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["spec"] == {"name": "code", "version": 1, "max_shard_size": "200MB"}
    assert queued_tasks(broker) == [("tailor.adapter.export", [job["id"]])]


def test_a_file_store_cannot_sign_links_and_says_so(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    register(session, tenant, "code")
    resp = client.get(
        f"/v1/teams/{tenant.slug}/adapters/code/versions/1/export", headers=tenant.auth()
    )
    assert resp.status_code == 501
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "S3" in resp.json()["detail"]


@pytest.fixture
def s3_client(
    settings: Settings,
    connection: Connection,
    sessions: sessionmaker[Session],
    s3_store: S3Store,
) -> Iterator[tuple[TestClient, S3Store]]:
    """The API on an S3 object store."""
    app: FastAPI = create_app(settings, engine=connection.engine, store=s3_store)
    app.state.sessionmaker = sessions
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, s3_store


def test_export_links_are_presigned_expire_and_download_the_files(
    s3_client: tuple[TestClient, S3Store], tenant: Tenant, session: Session
) -> None:
    client, store = s3_client
    register(session, tenant, "code")
    prefix = f"teams/{tenant.slug}/exports/code/1/"
    url = f"/v1/teams/{tenant.slug}/adapters/code/versions/1/export"
    assert client.get(url, headers=tenant.auth()).status_code == 404  # not exported yet
    store.put_bytes(prefix + "model.safetensors", b"merged weights")
    store.put_bytes(prefix + "tailor_export.json", b"{}")
    resp = client.get(url, params={"expires_s": 600}, headers=tenant.auth("viewer"))
    assert resp.status_code == 200, resp.text
    links = resp.json()
    assert sorted(links["files"]) == ["model.safetensors", "tailor_export.json"]
    signed = links["files"]["model.safetensors"]
    query = parse_qs(urlparse(signed).query)
    if "X-Amz-Expires" in query:  # SigV4 counts seconds, SigV2 names the moment
        assert query["X-Amz-Expires"] == ["600"]
    else:
        expires_at = datetime.fromisoformat(links["expires_at"]).timestamp()
        assert abs(int(query["Expires"][0]) - expires_at) <= 5
    assert httpx.get(signed).content == b"merged weights"


def test_another_team_gets_no_export_links(
    s3_client: tuple[TestClient, S3Store], tenant: Tenant, other_tenant: Tenant, session: Session
) -> None:
    client, store = s3_client
    register(session, tenant, "code")
    store.put_bytes(f"teams/{tenant.slug}/exports/code/1/tailor_export.json", b"{}")
    resp = client.get(
        f"/v1/teams/{tenant.slug}/adapters/code/versions/1/export", headers=other_tenant.auth()
    )
    assert resp.status_code == 404
    resp = client.get(
        f"/v1/teams/{other_tenant.slug}/adapters/code/versions/1/export",
        headers=other_tenant.auth(),
    )
    assert resp.status_code == 404


# --- import ----------------------------------------------------------------------------------


def adapter_files(rank: int = 4) -> dict[str, bytes]:
    """What a team uploads: a LoRA config and safetensors weights for one module."""
    weights = save_safetensors(
        {
            f"{MODULE}.lora_A.weight": np.zeros((rank, 128), dtype=np.float32),
            f"{MODULE}.lora_B.weight": np.zeros((384, rank), dtype=np.float32),
        }
    )
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 8, "target_modules": ["c_attn"]}
    return {
        "adapter_config.json": json.dumps(config).encode(),
        "adapter_model.safetensors": weights,
    }


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"adapter/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def upload(
    client: TestClient,
    tenant: Tenant,
    files: dict[str, bytes],
    *,
    role: str = "owner",
    base_model: str | None = "tiny-base",
) -> httpx.Response:
    data = {"base_model": base_model} if base_model else {}
    return client.post(
        f"/v1/teams/{tenant.slug}/adapters/outside/import",
        files=[("files", (name, content)) for name, content in files.items()],
        data=data,
        headers=tenant.auth(role),
    )


def stored_keys(store: FileStore, tenant: Tenant) -> list[str]:
    return store.list(f"teams/{tenant.slug}/")


def test_importing_the_two_files_stages_them_and_queues_the_job(
    client: TestClient, tenant: Tenant, store: FileStore, broker: redis.Redis
) -> None:
    resp = upload(client, tenant, adapter_files())
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert (job["kind"], job["spec"]["base_model"]) == ("adapter-import", "tiny-base")
    staging = f"teams/{tenant.slug}/imports/{job['id']}/"
    assert stored_keys(store, tenant) == [
        staging + "adapter_config.json",
        staging + "adapter_model.safetensors",
    ]
    assert queued_tasks(broker) == [("tailor.adapter.import", [job["id"]])]


def test_importing_a_tar_archive_works(
    client: TestClient, tenant: Tenant, store: FileStore, broker: redis.Redis
) -> None:
    resp = upload(client, tenant, {"adapter.tar": tar_of(adapter_files())})
    assert resp.status_code == 202, resp.text
    assert len(stored_keys(store, tenant)) == 2


@pytest.mark.parametrize(
    ("files", "problem_type", "says"),
    [
        (
            {"adapter_config.json": adapter_files()["adapter_config.json"],
             "adapter_model.bin": b"\x80\x04\x95 pickle"},
            "adapter-unsafe-file",
            "pickle",
        ),
        (
            {"adapter_config.json": adapter_files()["adapter_config.json"],
             "adapter_model.safetensors": adapter_files()["adapter_model.safetensors"][:-100]},
            "adapter-truncated",
            "truncated",
        ),
        (
            {"adapter_model.safetensors": adapter_files()["adapter_model.safetensors"]},
            "adapter-invalid",
            "adapter_config.json",
        ),
        (
            {"adapter.tar": tar_of({**adapter_files(), "adapter_model.bin": b"PK\x03\x04zip"})},
            "adapter-unsafe-file",
            "adapter_model.bin",
        ),
    ],
    ids=["pickle", "truncated", "no-config", "pickle-in-tar"],
)  # fmt: skip
def test_bad_uploads_are_refused_and_nothing_is_stored(
    client: TestClient,
    tenant: Tenant,
    store: FileStore,
    broker: redis.Redis,
    files: dict[str, bytes],
    problem_type: str,
    says: str,
) -> None:
    resp = upload(client, tenant, files)
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert problem["type"].endswith("/" + problem_type) and says in problem["detail"]
    assert stored_keys(store, tenant) == []
    assert queued_tasks(broker) == [] and jobs_of(client, tenant) == []


def test_a_new_adapter_needs_its_base_named(
    client: TestClient, tenant: Tenant, store: FileStore, broker: redis.Redis
) -> None:
    resp = upload(client, tenant, adapter_files(), base_model=None)
    assert resp.status_code == 422 and "base_model" in resp.json()["detail"]
    assert stored_keys(store, tenant) == []


def test_a_viewer_cannot_import(client: TestClient, tenant: Tenant, store: FileStore) -> None:
    assert upload(client, tenant, adapter_files(), role="viewer").status_code == 403
    assert stored_keys(store, tenant) == []


def test_the_api_limits_match_the_worker_library() -> None:
    from tailor.services.adapter_jobs import operations
    from tailor.stages.package import artifacts, compose, merge

    assert operations.MAX_RANK == compose.MAX_RANK
    assert operations.EXPORT_MANIFEST == merge.EXPORT_MANIFEST
    assert operations.export_prefix("t", "a", 2) == artifacts.export_prefix("t", "a", 2)


# --- CLI -------------------------------------------------------------------------------------


def wait_for_tasks(broker: redis.Redis) -> list[tuple[str, list[object]]]:
    """The queued tasks, once there are some: the API sends them after its commit, which a
    live server may finish after the response has reached the CLI."""
    for _ in range(500):
        if broker.llen("celery"):
            break
        time.sleep(0.02)
    return queued_tasks(broker)


def cli(url: str, tenant: Tenant, *args: str) -> Result:
    env = {"TAILOR_URL": url, "TAILOR_TOKEN": tenant.owner_token, "COLUMNS": "200"}
    return CliRunner().invoke(cli_app, list(args), env=env)


def test_the_cli_composes_and_prints_the_job_as_json(
    live_url: str, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    register(session, tenant, "code")
    register(session, tenant, "chat")
    result = cli(
        live_url, tenant, "adapter", "compose", tenant.slug, "assistant",
        "-i", "code@1", "-i", "chat=0.8", "--combination", "linear", "--no-follow", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert job["kind"] == "adapter-compose"
    weights = {a["ref"]: a["weight"] for a in job["spec"]["composition"]["adapters"]}
    assert weights == {"code@1": 1.0, "chat@1": 0.8}
    assert wait_for_tasks(broker) == [("tailor.adapter.compose", [job["id"]])]


def test_the_cli_imports_a_directory_and_shows_refusals(
    live_url: str, tenant: Tenant, store: FileStore, broker: redis.Redis, tmp_path: Path
) -> None:
    good = tmp_path / "good"
    good.mkdir()
    for name, data in adapter_files().items():
        (good / name).write_bytes(data)
    args = ("adapter", "import", tenant.slug, "outside", "--base-model", "tiny-base")
    result = cli(live_url, tenant, *args, str(good), "--no-follow")
    assert result.exit_code == 0, result.output
    assert "adapter-import" in result.output
    pickle_file = tmp_path / "adapter_model.bin"
    pickle_file.write_bytes(b"\x80\x04\x95 pickle")
    result = cli(live_url, tenant, *args, str(good / "adapter_config.json"), str(pickle_file))
    assert result.exit_code == 1 and "pickle" in result.output


def test_the_cli_explains_why_a_file_store_gives_no_links(
    live_url: str, tenant: Tenant, session: Session
) -> None:
    register(session, tenant, "code")
    result = cli(live_url, tenant, "adapter", "export", tenant.slug, "code", "1", "--links-only")
    assert result.exit_code == 1 and "S3" in result.output


def test_the_worker_runs_every_task_the_api_sends() -> None:
    from tailor.services.adapter_jobs import operations
    from worker.tasks import app as worker_app

    sent = {
        operations.COMPOSE_TASK,
        operations.EXPORT_TASK,
        operations.TRANSFER_TASK,
        operations.IMPORT_TASK,
    }
    assert sent <= set(worker_app.tasks)
