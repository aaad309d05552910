"""The served check after publish: the endpoint over the real gateway (tokens and endpoint
names resolved in the database) against the evaluated adapter, recorded on its job."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.models import AdapterVersion, ApiToken, Job, JobState, Role
from tailor.gateway import Routing
from tailor.queue import make_sender
from tailor.services.endpoints import service as endpoint_service
from tailor.services.endpoints.schemas import EndpointCreate
from tailor.services.endpoints.served_check import queue_served_check
from tailor.services.endpoints.served_check_run import run_served_check_job
from tailor.services.tokens.service import authenticate
from tailor.stages.serve.app import create_serving_app
from tailor.stages.serve.callers import Caller
from tailor.stages.serve.engine import TailorEngine
from tailor.storage import FileStore
from tailor.tenancy import TeamAccess, team_for
from tests.conftest import Tenant, create_tenant, create_version, evaluation_report, register_base
from tests.evaluate.conftest import DATASET, house_style_files, train_lora, write_dataset
from tests.serve.conftest import LiveServer, start_server

BASE, ADAPTER = "tiny-base", "house-style"


@pytest.fixture(scope="module")
def adapter_dir(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapter trained briefly on the team's code (enough to change its completions)."""
    files = house_style_files(40, 10)
    train = [content for _, content, split in files if split == "train"]
    out = tmp_path_factory.mktemp("served-check") / "adapter"
    return train_lora(tiny_base, train, out, steps=60, lr=3e-3)


@pytest.fixture
def sender() -> Iterator[Celery]:
    """Sends tasks to a private Redis database (nothing consumes them: the test runs the job)."""
    url = f"redis://127.0.0.1:6379/{15 - os.getpid() % 4}"
    yield make_sender(Settings(broker_url=url, result_backend=url))
    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def published(
    session: Session, tiny_base: Path, adapter_dir: Path, tmp_path: Path
) -> tuple[Tenant, TeamAccess, FileStore]:
    """A team whose evaluated version 1 of `house-style` is published at endpoint `house-style`."""
    tenant = create_tenant(session)
    store = FileStore(tmp_path / "objects")
    write_dataset(store, tenant.slug, DATASET, house_style_files(40, 10))
    register_base(session, BASE, tiny_base)
    report = evaluation_report()
    spec = report["spec"]
    assert isinstance(spec, dict)
    spec |= {"dataset_id": DATASET, "fim": {"tasks": 6, "context_chars": 400, "max_new_tokens": 16}}
    create_version(session, tenant.team, ADAPTER, 1, evaluation=report, base=BASE)
    version = session.scalars(select(AdapterVersion)).all()[-1]
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        store.upload_file(adapter_dir / name, f"{version.prefix.rstrip('/')}/{name}")
    access = team_for(session, authenticate(session, tenant.owner_token), tenant.slug, Role.admin)
    endpoint_service.publish(
        session, access, EndpointCreate(name=ADAPTER, adapter=ADAPTER), serves=BASE
    )
    session.commit()
    return tenant, access, store


@contextmanager
def gateway(
    connection: Connection, store: FileStore, tiny_base: Path, drop_adapter: bool = False
) -> Iterator[LiveServer]:
    """The database-backed gateway; `drop_adapter` serves the base whatever the endpoint says."""

    @contextmanager
    def savepoint() -> Iterator[Connection]:
        with connection.begin_nested():
            yield connection

    routing = Routing(savepoint, savepoint)

    def lookup(token: str, model: str | None) -> Caller | None:
        caller = routing.lookup(token, model)
        return replace(caller, adapter=None) if caller and drop_adapter else caller

    engine = TailorEngine(str(tiny_base), store).start()
    engine.wait_ready(120)
    live = start_server(
        create_serving_app(engine, lookup=lookup, list_models=routing.models, base_name=BASE)
    )
    try:
        yield live
    finally:
        live.stop()
        engine.close()


def _run_check(
    session: Session,
    sessions: sessionmaker[Session],
    settings: Settings,
    sender: Celery,
    access: TeamAccess,
    store: FileStore,
    url: str,
) -> Job:
    configured = settings.model_copy(update={"serve_url": url, "served_check_fim_tasks": 6})
    job_id = queue_served_check(session, access, ADAPTER, sender, configured).id
    session.commit()
    run_served_check_job(sessions, store, configured, job_id)
    session.expire_all()
    return session.scalars(select(Job).where(Job.uid == job_id)).one()


@pytest.mark.slow
def test_an_endpoint_serving_its_evaluated_version_passes_the_served_check(
    session: Session,
    sessions: sessionmaker[Session],
    connection: Connection,
    settings: Settings,
    sender: Celery,
    tiny_base: Path,
    published: tuple[Tenant, TeamAccess, FileStore],
) -> None:
    _tenant, access, store = published
    with gateway(connection, store, tiny_base) as live:
        job = _run_check(session, sessions, settings, sender, access, store, live.url)
    assert job.state == JobState.succeeded, job.error
    assert (job.result["agreed"], job.result["identical"], job.result["tasks"]) == (True, 6, 6)
    # The check's own token is gone once it ended.
    assert not session.scalars(select(ApiToken).where(ApiToken.name.like("served check%"))).all()


@pytest.mark.slow
def test_an_endpoint_serving_without_its_adapter_fails_the_check_naming_why(
    session: Session,
    sessions: sessionmaker[Session],
    connection: Connection,
    settings: Settings,
    sender: Celery,
    tiny_base: Path,
    published: tuple[Tenant, TeamAccess, FileStore],
) -> None:
    _tenant, access, store = published
    with gateway(connection, store, tiny_base, drop_adapter=True) as live:
        job = _run_check(session, sessions, settings, sender, access, store, live.url)
    assert job.state == JobState.failed
    assert job.error is not None and "adapter not applied" in job.error
    assert job.result["agreed"] is False and job.result["disagreements"]
