"""The worker side of compose, transfer, export and import on the tiny model.

Each test stores real adapters as registered versions, runs the job function the Celery
task calls, and checks what a team would see: the job's state and message, the new
version with its lineage, its files, and the evaluation queued after it.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import torch
from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.models import AdapterVersion, Job, Role
from tailor.jobs import service as jobs
from tailor.jobs.schemas import JobOut
from tailor.queue import make_sender
from tailor.services.adapter_jobs import operations
from tailor.services.adapter_jobs.run import run_adapter_job
from tailor.services.adapters.service import list_versions, register_version
from tailor.stages.package.spec import CONFIG_FILE, WEIGHTS_FILE
from tailor.storage import FileStore
from tailor.tenancy import Principal, TeamAccess, team_for
from tests.adapters.conftest import in_catalog, logits
from tests.conftest import Tenant, create_tenant, redis_db, watch_paths


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """A private Redis database the jobs send their follow-up tasks to."""
    client = redis.Redis(host="127.0.0.1", port=6379, db=redis_db())
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def sender(broker: redis.Redis) -> Celery:
    """Sends tasks to the private Redis database."""
    kwargs = broker.connection_pool.connection_kwargs
    url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"
    return make_sender(Settings(broker_url=url, result_backend=url))


def queued(broker: redis.Redis) -> list[tuple[str, list[object]]]:
    """(task name, args) of every message waiting in the default queue."""
    messages = [json.loads(raw) for raw in broker.lrange("celery", 0, -1)]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages]


@pytest.fixture
def tenant(session: Session) -> Tenant:
    """A team with an owner and a viewer."""
    return create_tenant(session)


def access_of(session: Session, tenant: Tenant) -> TeamAccess:
    """The team's owner as the API would see them."""
    principal = Principal(user_id=tenant.owner.id, email=tenant.owner.email)
    return team_for(session, principal, tenant.slug, Role.member)


def store_version(
    session: Session,
    store: FileStore,
    tenant: Tenant,
    name: str,
    adapter_dir: Path,
    base: Path,
) -> None:
    """Store an adapter's files and register them as version 1 on `base`, as a fine-tune would."""
    prefix = f"teams/{tenant.slug}/adapters/{name}/1/"
    for file_name in (WEIGHTS_FILE, CONFIG_FILE):
        store.upload_file(adapter_dir / file_name, prefix + file_name)
    register_version(
        session,
        team_id=tenant.team.id,
        team_slug=tenant.slug,
        name=name,
        version=1,
        manifest={"base_model": in_catalog(session, base), "dataset_id": "ds-1"},
    )
    session.commit()


def system_job(session: Session, tenant: Tenant, kind: str, spec: dict[str, object]) -> str:
    job = jobs.create_system_job(session, tenant.team.id, kind, spec)
    session.commit()
    return job.uid


def job_of(sessions: sessionmaker[Session], uid: str) -> Job:
    with sessions() as s:
        return s.scalars(select(Job).where(Job.uid == uid)).one()


def versions(session: Session, tenant: Tenant, name: str) -> list[AdapterVersion]:
    session.expire_all()
    return list(
        session.scalars(
            select(AdapterVersion)
            .where(AdapterVersion.team_id == tenant.team.id)
            .where(AdapterVersion.prefix.like(f"teams/{tenant.slug}/adapters/{name}/%"))
        )
    )


def compose_spec(kind: str, weights: dict[str, float], **extra: object) -> dict[str, object]:
    composition = {
        "adapters": [{"ref": ref, "weight": w} for ref, w in weights.items()],
        "combination_type": kind,
        **extra,
    }
    return {"name": "assistant", "composition": composition, "eval_dataset_id": "ds-1"}


# --- compose ---------------------------------------------------------------------------------


def test_compose_registers_a_version_with_lineage_and_queues_its_evaluation(
    session: Session,
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    tenant: Tenant,
    tiny_base: Path,
    adapter_a: Path,
    adapter_b: Path,
    input_ids: torch.Tensor,
    sender: Celery,
    broker: redis.Redis,
    tmp_path: Path,
) -> None:
    store_version(session, store, tenant, "code", adapter_a, tiny_base)
    store_version(session, store, tenant, "chat", adapter_b, tiny_base)
    uid = system_job(
        session, tenant, "adapter-compose", compose_spec("linear", {"code@1": 1.0, "chat@1": 0.0})
    )
    run_adapter_job(sessions, store, settings, "adapter-compose", uid, sender)

    job = job_of(sessions, uid)
    assert job.state.value == "succeeded", job.error
    assert (job.result["adapter"], job.result["version"]) == ("assistant", 1)
    (out,) = list_versions(session, access_of(session, tenant), "assistant")
    assert (out.origin, out.parents) == ("composed", ["code@1", "chat@1"])
    assert out.base_model == tiny_base.name and out.checksum.startswith("sha256:")
    evaluation = job_of(sessions, job.result["evaluation_job"])
    assert evaluation.kind == "evaluation" and evaluation.spec["adapter"] == "assistant"
    assert queued(broker) == [("tailor.evaluate", [evaluation.uid])]
    # Weight 0 on the chat adapter: the stored result behaves like the code adapter.
    local = tmp_path / "composed"
    for key in store.list(f"teams/{tenant.slug}/adapters/assistant/1/"):
        store.download_file(key, local / key.rsplit("/", 1)[1])
    expected = logits(tiny_base, adapter_a, input_ids)
    assert torch.allclose(logits(tiny_base, local, input_ids), expected, atol=1e-5)


def test_compose_refused_by_a_rank_rule_fails_the_job_and_stores_nothing(
    session: Session,
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    tenant: Tenant,
    tiny_base: Path,
    adapter_a: Path,
    adapter_b: Path,
    sender: Celery,
    broker: redis.Redis,
) -> None:
    store_version(session, store, tenant, "code", adapter_a, tiny_base)
    store_version(session, store, tenant, "chat", adapter_b, tiny_base)
    spec = compose_spec("svd", {"code@1": 1.0, "chat@1": 0.8}, svd_rank=100_000)
    uid = system_job(session, tenant, "adapter-compose", spec)
    run_adapter_job(sessions, store, settings, "adapter-compose", uid, sender)

    job = job_of(sessions, uid)
    assert job.state.value == "failed"
    assert job.error is not None and "svd_rank must be at most" in job.error
    assert versions(session, tenant, "assistant") == []
    assert store.list(f"teams/{tenant.slug}/adapters/assistant/") == []
    assert queued(broker) == []


def test_compose_skips_the_version_number_a_running_fine_tune_holds(
    session: Session,
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    tenant: Tenant,
    tiny_base: Path,
    adapter_a: Path,
    adapter_b: Path,
    sender: Celery,
) -> None:
    store_version(session, store, tenant, "code", adapter_a, tiny_base)
    store_version(session, store, tenant, "chat", adapter_b, tiny_base)
    system_job(session, tenant, "finetune", {"adapter_name": "assistant", "adapter_version": "1"})
    spec = compose_spec("cat", {"code@1": 1.0, "chat@1": 1.0})
    uid = system_job(session, tenant, "adapter-compose", spec)
    run_adapter_job(sessions, store, settings, "adapter-compose", uid, sender)

    job = job_of(sessions, uid)
    assert job.state.value == "succeeded", job.error
    assert job.result["version"] == 2
    assert [v.version for v in versions(session, tenant, "assistant")] == [2]


# --- transfer --------------------------------------------------------------------------------


def test_transfer_to_a_sibling_base_registers_a_version_on_it(
    session: Session,
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    tenant: Tenant,
    tiny_base: Path,
    sibling_base: Path,
    adapter_a: Path,
    sender: Celery,
    broker: redis.Redis,
) -> None:
    store_version(session, store, tenant, "code", adapter_a, tiny_base)
    spec = {
        "source": {"name": "code", "version": 1},
        "target_name": "code-instruct",
        "transfer": {"target_base": in_catalog(session, sibling_base), "target_revision": None},
        "eval_dataset_id": "ds-1",
    }
    uid = system_job(session, tenant, "adapter-transfer", spec)
    run_adapter_job(sessions, store, settings, "adapter-transfer", uid, sender)

    job = job_of(sessions, uid)
    assert job.state.value == "succeeded", job.error
    (out,) = list_versions(session, access_of(session, tenant), "code-instruct")
    assert (out.origin, out.parents, out.base_model) == (
        "transferred",
        ["code@1"],
        sibling_base.name,
    )
    assert [name for name, _args in queued(broker)] == ["tailor.evaluate"]


def test_transfer_to_a_different_shape_is_refused_clearly(
    session: Session,
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    tenant: Tenant,
    tiny_base: Path,
    wider_base: Path,
    adapter_a: Path,
    sender: Celery,
    broker: redis.Redis,
) -> None:
    store_version(session, store, tenant, "code", adapter_a, tiny_base)
    spec = {
        "source": {"name": "code", "version": 1},
        "target_name": "code-wide",
        "transfer": {"target_base": in_catalog(session, wider_base), "target_revision": None},
    }
    uid = system_job(session, tenant, "adapter-transfer", spec)
    run_adapter_job(sessions, store, settings, "adapter-transfer", uid, sender)

    job = job_of(sessions, uid)
    assert job.state.value == "failed"
    assert job.error is not None and "cannot transfer" in job.error and "hidden size" in job.error
    assert versions(session, tenant, "code-wide") == [] and queued(broker) == []


# --- export ----------------------------------------------------------------------------------


def test_export_writes_a_merged_checkpoint_under_the_teams_exports(
    session: Session,
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    tenant: Tenant,
    tiny_base: Path,
    adapter_a: Path,
    input_ids: torch.Tensor,
    tmp_path: Path,
) -> None:
    store_version(session, store, tenant, "code", adapter_a, tiny_base)
    spec = {"name": "code", "version": 1, "max_shard_size": "200KB"}
    uid = system_job(session, tenant, "adapter-export", spec)
    run_adapter_job(sessions, store, settings, "adapter-export", uid)

    job = job_of(sessions, uid)
    assert job.state.value == "succeeded", job.error
    prefix = f"teams/{tenant.slug}/exports/code/1/"
    assert job.result["prefix"] == prefix and job.result["shards"] > 1
    assert "model.safetensors.index.json" in job.result["files"]
    merged = tmp_path / "merged"
    for key in store.list(prefix):
        store.download_file(key, merged / key[len(prefix) :])
    expected = logits(tiny_base, adapter_a, input_ids)
    assert torch.allclose(logits(merged, None, input_ids), expected, atol=1e-4)


# --- import ----------------------------------------------------------------------------------


def _tar(adapter_dir: Path) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for file_name in (WEIGHTS_FILE, CONFIG_FILE):
            tar.add(adapter_dir / file_name, arcname=f"adapter/{file_name}")
    buf.seek(0)
    return buf


def start_import(
    session: Session,
    tenant: Tenant,
    store: FileStore,
    sender: Celery,
    work: Path,
    archive: io.BytesIO,
    form: Any,
) -> JobOut:
    """An upload as the API receives it: the archive saved, then checked and staged."""
    saved = work / "files" / "adapter.tar"
    saved.parent.mkdir(parents=True)
    saved.write_bytes(archive.getvalue())
    access = access_of(session, tenant)
    return operations.start_import(session, access, store, "outside", [saved], work, form, sender)


def test_an_uploaded_adapter_becomes_an_imported_version(
    session: Session,
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    tenant: Tenant,
    tiny_base: Path,
    adapter_c: Path,
    sender: Celery,
    broker: redis.Redis,
    tmp_path: Path,
) -> None:
    from tailor.services.adapters.schemas import ImportForm

    base = in_catalog(session, tiny_base, revision="r1")
    form = ImportForm(base_model=base, base_revision="r1", eval_dataset_id="ds-1")
    job = start_import(session, tenant, store, sender, tmp_path, _tar(adapter_c), form)
    session.commit()
    assert queued(broker) == [("tailor.adapter.import", [job.id])]
    broker.flushdb()
    run_adapter_job(sessions, store, settings, "adapter-import", job.id, sender)

    done = job_of(sessions, job.id)
    assert done.state.value == "succeeded", done.error
    (out,) = list_versions(session, access_of(session, tenant), "outside")
    assert (out.origin, out.base_model, out.base_revision) == ("imported", base, "r1")
    assert store.list(f"teams/{tenant.slug}/imports/") == []  # the staged upload is gone
    assert [name for name, _args in queued(broker)] == ["tailor.evaluate"]


def test_an_upload_that_does_not_fit_the_base_fails_and_leaves_nothing(
    session: Session,
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    tenant: Tenant,
    tiny_base: Path,
    wider_base: Path,
    sender: Celery,
    tmp_path: Path,
) -> None:
    from tests.adapters.conftest import make_adapter

    wide = make_adapter(wider_base, tmp_path / "wide", seed=5)
    from tailor.services.adapters.schemas import ImportForm

    form = ImportForm(base_model=in_catalog(session, tiny_base))
    job = start_import(session, tenant, store, sender, tmp_path / "upload", _tar(wide), form)
    session.commit()
    run_adapter_job(sessions, store, settings, "adapter-import", job.id, sender)

    done = job_of(sessions, job.id)
    assert done.state.value == "failed"
    assert done.error is not None and "does not fit base model" in done.error
    assert versions(session, tenant, "outside") == []
    assert store.list(f"teams/{tenant.slug}/") == []


def test_a_version_whose_files_were_tampered_with_is_refused(
    session: Session,
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    tenant: Tenant,
    tiny_base: Path,
    adapter_a: Path,
    tmp_path: Path,
) -> None:
    sealed = tmp_path / "sealed"
    shutil.copytree(adapter_a, sealed)
    from tailor.stages.package.artifacts import save_version

    manifest = save_version(store, tenant.slug, "code", 1, sealed)
    register_version(
        session, team_id=tenant.team.id, team_slug=tenant.slug, name="code", version=1,
        manifest={"base_model": in_catalog(session, tiny_base), "checksum": manifest.checksum},
    )  # fmt: skip
    session.commit()
    store.put_bytes(f"teams/{tenant.slug}/adapters/code/1/{CONFIG_FILE}", b"{}")
    uid = system_job(session, tenant, "adapter-export", {"name": "code", "version": 1})
    run_adapter_job(sessions, store, settings, "adapter-export", uid)

    job = job_of(sessions, uid)
    assert job.state.value == "failed"
    assert job.error is not None and "corrupted" in job.error


def test_an_import_cancelled_while_queued_leaves_no_upload_behind(
    session: Session,
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    tenant: Tenant,
    tiny_base: Path,
    adapter_a: Path,
    sender: Celery,
    tmp_path: Path,
) -> None:
    from tailor.services.adapters.schemas import ImportForm

    access = access_of(session, tenant)
    form = ImportForm(base_model=in_catalog(session, tiny_base))
    job = start_import(session, tenant, store, sender, tmp_path, _tar(adapter_a), form)
    session.commit()
    assert store.list(f"teams/{tenant.slug}/imports/") != []
    jobs.request_cancel(session, access, jobs.get_job(session, access, job.id))
    session.commit()
    run_adapter_job(sessions, store, settings, "adapter-import", job.id, sender)

    assert job_of(sessions, job.id).state.value == "cancelled"
    assert store.list(f"teams/{tenant.slug}/") == []
    assert versions(session, tenant, "outside") == []


# --- the worker loads only catalog bases -----------------------------------------------------


@pytest.fixture
def other_teams_export(store: FileStore, tiny_base: Path) -> Path:
    """Another team's merged checkpoint where its export job left it on the worker's disk."""
    export = store.root / "teams" / "team-a" / "exports" / "code" / "1"
    shutil.copytree(tiny_base, export)
    return export


def test_an_import_job_naming_a_path_as_its_base_loads_nothing(
    session: Session,
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    tenant: Tenant,
    adapter_a: Path,
    other_teams_export: Path,
    sender: Celery,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staging = f"teams/{tenant.slug}/imports/stolen/"
    for file_name in (WEIGHTS_FILE, CONFIG_FILE):
        store.upload_file(adapter_a / file_name, staging + file_name)
    spec = {"name": "stolen", "base_model": str(other_teams_export), "staging": staging}
    uid = system_job(session, tenant, "adapter-import", spec)
    touched = watch_paths(monkeypatch, str(other_teams_export))
    run_adapter_job(sessions, store, settings, "adapter-import", uid, sender)

    job = job_of(sessions, uid)
    assert job.state.value == "failed" and job.error is not None and "catalog" in job.error
    assert touched == [] and versions(session, tenant, "stolen") == []


def test_a_transfer_job_naming_a_path_as_its_target_loads_nothing(
    session: Session,
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    tenant: Tenant,
    tiny_base: Path,
    adapter_a: Path,
    other_teams_export: Path,
    sender: Celery,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store_version(session, store, tenant, "code", adapter_a, tiny_base)
    spec = {
        "source": {"name": "code", "version": 1},
        "target_name": "stolen",
        "transfer": {"target_base": str(other_teams_export), "target_revision": None},
    }
    uid = system_job(session, tenant, "adapter-transfer", spec)
    touched = watch_paths(monkeypatch, str(other_teams_export))
    run_adapter_job(sessions, store, settings, "adapter-transfer", uid, sender)

    job = job_of(sessions, uid)
    assert job.state.value == "failed" and job.error is not None and "catalog" in job.error
    assert touched == [] and versions(session, tenant, "stolen") == []


def test_a_version_stored_with_a_regex_key_is_refused_before_peft_reads_it(
    session: Session,
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    tenant: Tenant,
    tiny_base: Path,
    adapter_a: Path,
    tmp_path: Path,
) -> None:
    # Imported before uploads were checked: its config still holds a regular expression.
    legacy = shutil.copytree(adapter_a, tmp_path / "legacy")
    config = json.loads((legacy / CONFIG_FILE).read_text()) | {"rank_pattern": {"(a+)+$b": 4}}
    (legacy / CONFIG_FILE).write_text(json.dumps(config))
    store_version(session, store, tenant, "code", legacy, tiny_base)
    uid = system_job(session, tenant, "adapter-export", {"name": "code", "version": 1})
    run_adapter_job(sessions, store, settings, "adapter-export", uid)

    job = job_of(sessions, uid)
    assert job.state.value == "failed"
    assert job.error is not None and "not a module name or glob" in job.error
    assert store.list(f"teams/{tenant.slug}/exports/") == []
