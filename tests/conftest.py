"""Shared fixtures: real PostgreSQL and SQLite, per-test rollback, factories, API clients."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from sqlalchemy import Connection, Engine, delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings, get_settings
from tailor.db import migrate
from tailor.db.base import utcnow
from tailor.db.models import (
    AuditEvent,
    BaseModelEntry,
    Job,
    JobState,
    Membership,
    Role,
    Team,
    User,
)
from tailor.db.session import make_engine, session_factory
from tailor.jobs import service as jobs
from tailor.jobs.workers import identity_of
from tailor.queue import make_sender
from tailor.security import CredentialCipher
from tailor.services.tokens.service import issue_token
from tailor.storage import FileStore, S3Store

# pytest-xdist's workers start with COLUMNS=80, and a rich Console made while COLUMNS is set
# keeps that width: without it, the CLI's consoles take the width a test's env gives.
os.environ.pop("COLUMNS", None)

POSTGRES_URL = os.environ.get(
    "TAILOR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_engine() -> Iterator[Engine]:
    # A schema of its own per run: parallel runs and leftovers never collide.
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        with engine.begin() as conn:
            _upgrade_on(conn)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _upgrade_on(conn: Connection) -> None:
    from alembic import command

    cfg = migrate.alembic_config(str(conn.engine.url))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


# For tests of a PostgreSQL-only feature: `pytestmark = ONLY_POSTGRESQL`.
ONLY_POSTGRESQL = pytest.mark.parametrize("db_engine", ["postgresql"], indirect=True)


def redis_db(role: str = "app") -> int:
    """A Redis database of this test process's own: "app" for the brokers tests read,
    "operator" for the operator platform's, where a session's Celery worker does not look.

    pytest-xdist's workers of one run take a pair each (1-2, 3-4, ...; seven workers at
    most), so they never share one; a plain run takes 5..14 by its pid, or 15 for the
    operator's, so it can run beside the default two workers.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return 15 if role == "operator" else 5 + os.getpid() % 10
    return 1 + 2 * int(worker.removeprefix("gw")) + (role == "operator")


def celery_broker() -> Iterator[tuple[Celery, redis.Redis]]:
    """A sender to this process's Redis database, and that database (read it with
    queued_tasks), emptied before and after: a fixture's body, `yield from celery_broker()`."""
    db = redis_db()
    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    client.flushdb()
    url = f"redis://127.0.0.1:6379/{db}"
    yield make_sender(Settings(broker_url=url, result_backend=url)), client
    client.flushdb()


def eventually(check: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    """Whether `check()` comes true before the timeout (for what another thread does).

    The wait ends as soon as it does; the generous default is for a CI machine whose two
    cores both run tests, where a thread can be kept off the CPU for seconds.
    """
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A migrated database, once per backend per test session."""
    if request.param == "postgresql":
        yield from _postgres_engine()
        return
    path = tmp_path_factory.mktemp("sqlite") / "tailor.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(db_engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    conn = db_engine.connect()
    trans = conn.begin()
    yield conn
    trans.rollback()
    conn.close()


@pytest.fixture
def sessions(connection: Connection) -> sessionmaker[Session]:
    """Sessions whose commits become savepoints of the test's transaction."""
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def committed(db_engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions on connections of their own, committing for real (for tests of transactions
    meeting); the teams and users they made are deleted afterwards."""
    sessions = session_factory(db_engine)
    with sessions() as s:
        teams, users = set(s.scalars(select(Team.id))), set(s.scalars(select(User.id)))
        bases = set(s.scalars(select(BaseModelEntry.id)))
        audited = s.scalar(select(func.max(AuditEvent.id))) or 0
    yield sessions
    with sessions.begin() as s:
        s.execute(delete(Team).where(Team.id.not_in(teams)))
        s.execute(delete(User).where(User.id.not_in(users)))
        s.execute(delete(BaseModelEntry).where(BaseModelEntry.id.not_in(bases)))
        s.execute(delete(AuditEvent).where(AuditEvent.id > audited))  # they outlive teams


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One session for arranging and checking data."""
    with sessions() as s:
        yield s


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Embedded settings in a private workspace."""
    s = Settings(workspace=tmp_path / "ws", git_allow_http=True)
    s.ensure_workspace()
    yield s
    get_settings.cache_clear()


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    """A file object store."""
    return FileStore(tmp_path / "objects")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API on loopback (moto's server), one for the whole run."""
    # Imported here: moto and boto3 take about a second to import, paid only by S3 tests.
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_store(s3_endpoint: str) -> S3Store:
    """An empty bucket of the test's own behind the S3 API."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    bucket = f"t-{uuid.uuid4().hex}"  # one server serves every test: no two share a bucket
    client.create_bucket(Bucket=bucket)
    return S3Store(bucket, "tailor", client)


@pytest.fixture
def cipher(settings: Settings) -> CredentialCipher:
    """The credential cipher for `settings`."""
    return CredentialCipher(settings.encryption_key())


# --- factories -------------------------------------------------------------------------------


def create_user(session: Session, email: str | None = None, *, admin: bool = False) -> User:
    """A user with a unique e-mail."""
    user = User(email=email or f"u-{uuid.uuid4().hex[:8]}@example.com", name="Test", is_admin=admin)
    session.add(user)
    session.flush()
    return user


def create_team(session: Session, owner: User, slug: str | None = None) -> Team:
    """A team owned by `owner`."""
    team = Team(slug=slug or f"team-{uuid.uuid4().hex[:8]}", name="Test team")
    session.add(team)
    session.flush()
    session.add(Membership(team_id=team.id, user_id=owner.id, role=Role.owner))
    session.flush()
    return team


def add_member(session: Session, team: Team, user: User, role: Role) -> None:
    """Give `user` a role in `team`."""
    session.add(Membership(team_id=team.id, user_id=user.id, role=role))
    session.flush()


def create_token(
    session: Session,
    user: User,
    *,
    team: Team | None = None,
    scopes: tuple[str, ...] = ("read", "write"),
) -> str:
    """A plaintext bearer token for `user`."""
    _row, plaintext = issue_token(
        session,
        user,
        name="test",
        scopes=list(scopes),
        team_id=team.id if team else None,
        expires_at=None,
    )
    return plaintext


@dataclass
class Tenant:
    """A team with an owner, a viewer and their tokens."""

    team: Team
    owner: User
    owner_token: str
    viewer: User
    viewer_token: str

    @property
    def slug(self) -> str:
        return self.team.slug

    def auth(self, role: str = "owner") -> dict[str, str]:
        token = self.owner_token if role == "owner" else self.viewer_token
        return {"Authorization": f"Bearer {token}"}


def create_tenant(session: Session, slug: str | None = None) -> Tenant:
    """A team with an owner and a viewer, committed."""
    owner, viewer = create_user(session), create_user(session)
    team = create_team(session, owner, slug)
    add_member(session, team, viewer, Role.viewer)
    tenant = Tenant(
        team, owner, create_token(session, owner), viewer, create_token(session, viewer)
    )
    session.commit()
    return tenant


# The base the gateway serves by default (`TAILOR_SERVE_BASE_MODEL`), by its catalog name.
SERVED_BASE = "tiny-starcoder"


def register_base(
    session: Session,
    name: str,
    source: str | Path | None = None,
    *,
    family: str = "",
    revision: str | None = None,
) -> None:
    """A base model in the platform's catalog (an admin's job); committed.

    Once per name, except that a named `source` replaces the one an earlier test of a
    shared database gave it, so a test that loads the files never depends on test order.
    """
    from tailor.services.base_models.service import find

    entry = find(session, name)
    if entry is None:
        source = str(source or f"tailor-test/{name}")
        session.add(BaseModelEntry(name=name, source=source, family=family, revision=revision))
    elif source is not None:
        entry.source = str(source)
    session.commit()


def evaluation_report(
    *,
    eval_loss: tuple[float, float] | None = (2.0, 1.5),
    edit_similarity: tuple[float, float, float] = (0.20, 0.30, 0.05),
    humaneval: tuple[float, float] | None = None,
) -> dict[str, object]:
    """A stored evaluation: (base, adapter) eval loss and HumanEval pass@1, and the edit
    similarity as (base, adapter, lower end of the delta's 95% CI). Defaults pass the gate."""
    from tailor.stages.evaluate.spec import Comparison, EvalReport, EvalSpec, ModelScores

    base, adapter, low = edit_similarity
    rows = [
        Comparison(
            metric="fim.edit_similarity", base=base, adapter=adapter, delta=adapter - base,
            ci_low=low, ci_high=2 * (adapter - base) - low, n=100,
        )
    ]  # fmt: skip
    if eval_loss is not None:
        b, a = eval_loss
        rows.append(Comparison(metric="eval_loss", base=b, adapter=a, delta=a - b))
    if humaneval is not None:
        b, a = humaneval
        rows.append(Comparison(metric="humaneval.pass@1", base=b, adapter=a, delta=a - b, n=164))
    spec = EvalSpec(team="acme", base_model=SERVED_BASE, dataset_id="ds-1")
    report = EvalReport(
        spec=spec,
        base=ModelScores(label="base"),
        adapter=ModelScores(label="adapter"),
        comparison=rows,
    )
    return report.model_dump(mode="json")


def create_version(
    session: Session,
    team: Team,
    name: str = "completion",
    version: int = 1,
    evaluation: dict[str, object] | None = None,
    base: str = SERVED_BASE,
    evaluated: bool = True,
) -> None:
    """A registered adapter version on a catalog base (files are the test's business).

    Evaluated by default (an evaluation that passes the default publish gate), unless
    `evaluated` is False or `evaluation` is given.
    """
    from tailor.services.adapters.service import register_version

    register_base(session, base)
    if evaluation is None:
        evaluation = evaluation_report() if evaluated else {}
    register_version(
        session,
        team_id=team.id,
        team_slug=team.slug,
        name=name,
        version=version,
        manifest={"base_model": base, "evaluation": evaluation},
    )
    session.commit()


def create_ready_dataset(session: Session, team: Team, uid: str = "ds-1") -> None:
    """A dataset whose harvest succeeded (its shards are the test's business); committed."""
    from tailor.db.models import Dataset, Job, JobState

    harvest = Job(uid=f"ha-{uuid.uuid4().hex[:12]}", team_id=team.id, kind="harvest", spec={})
    harvest.state = JobState.succeeded
    session.add(harvest)
    session.flush()
    prefix = f"teams/{team.slug}/datasets/{uid}/"
    session.add(Dataset(uid=uid, team_id=team.id, job_id=harvest.id, prefix=prefix))
    session.commit()


def watch_paths(monkeypatch: pytest.MonkeyPatch, *roots: str) -> list[str]:
    """Every path under `roots` this process stats, lists or opens from now on (recorded)."""
    import builtins
    import io

    seen: list[str] = []

    def watch(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(path, str | os.PathLike) and str(path).startswith(roots):
                seen.append(str(path))
            return fn(path, *args, **kwargs)

        return wrapper

    for module, name in ((os, "stat"), (os, "scandir"), (os, "listdir"), (io, "open"),
                         (builtins, "open")):  # fmt: skip
        monkeypatch.setattr(module, name, watch(getattr(module, name)))
    return seen


# --- workers that live and workers that died, as real processes ---------------------------


@pytest.fixture
def live_worker() -> Iterator[str]:
    """The identity of another process of this machine that keeps running."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield identity_of(proc.pid)
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def dead_worker() -> str:
    """The identity a process of this machine had before it was killed."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    identity = identity_of(proc.pid)
    proc.kill()
    proc.wait()
    return identity


def running_job(
    session: Session,
    tenant: Tenant,
    worker: str | None,
    *,
    kind: str = "harvest",
    attempts: int = 1,
    heartbeat_age_s: float = 0.0,
) -> Job:
    """A job that `worker` runs (attempt `attempts`), last heard of `heartbeat_age_s` ago."""
    job = jobs.create_system_job(session, tenant.team.id, kind, {})
    job.state, job.attempts, job.started_at = JobState.running, attempts, utcnow()
    job.worker = worker
    job.heartbeat_at = utcnow() - timedelta(seconds=heartbeat_age_s)
    session.commit()
    return job
