"""The gateway: team tokens and endpoint names resolved in Tailor's database, per request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from tailor.db.models import ApiToken, Role, Team
from tailor.db.notices import NotifiedCache
from tailor.gateway import GrantCache, Routing, routing_channel, teams_with_context
from tailor.security import hash_token
from tailor.services.endpoints import service as endpoint_service
from tailor.services.endpoints.schemas import ContextSettings, EndpointCreate, Promote
from tailor.services.teams.service import remove_member
from tailor.services.tokens.service import authenticate, revoke_team_token
from tailor.stages.serve.app import create_serving_app
from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.lora_cache import store_prefix
from tailor.tenancy import TeamAccess, team_for
from tests.conftest import (
    ONLY_POSTGRESQL,
    SERVED_BASE,
    Tenant,
    create_tenant,
    create_token,
    create_version,
    eventually,
)

from .conftest import AdapterFactory, LiveServer, start_server

PROMPT = "def total(items):\n"
GREEDY = {"ignore_eos": True, "stop_at_block_end": False}


@dataclass
class Published:
    """A team with an endpoint `completion` on version 1 and an IDE token for it."""

    tenant: Tenant
    access: TeamAccess
    ide_token: str
    keys: list[str]


@pytest.fixture
def published(session: Session, adapters: AdapterFactory) -> Published:
    tenant = create_tenant(session)
    keys = []
    for version, seed in ((1, 21), (2, 22)):
        keys.append(adapters.create(tenant.slug, "completion", str(version), seed=seed))
        create_version(session, tenant.team, "completion", version)
    access, ide_token = publish_version_1(session, tenant)
    return Published(tenant, access, ide_token, keys)


def publish_version_1(session: Session, tenant: Tenant) -> tuple[TeamAccess, str]:
    """Endpoint `completion` on version 1 of adapter `completion`, and an IDE token, committed."""
    access = team_for(session, authenticate(session, tenant.owner_token), tenant.slug, Role.admin)
    body = EndpointCreate(name="completion", adapter="completion", version=1)
    endpoint_service.publish(session, access, body, serves=SERVED_BASE)
    ide_token = create_token(session, tenant.owner, team=tenant.team, scopes=("inference",))
    session.commit()
    return access, ide_token


@pytest.fixture
def routing(connection: Connection) -> Routing:
    """Routing whose transactions are savepoints of the test's own (rolled back after it)."""

    @contextmanager
    def savepoint() -> Iterator[Connection]:
        with connection.begin_nested():
            yield connection

    return Routing(savepoint, savepoint)


@pytest.fixture
def gateway(routing: Routing, engine: TailorEngine) -> Iterator[LiveServer]:
    live = start_server(
        create_serving_app(
            engine,
            lookup=routing.lookup,
            list_models=routing.models,
            base_name=SERVED_BASE,
        )
    )
    yield live
    live.stop()


def complete(server: LiveServer, token: str, model: str = "completion") -> str:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=token, max_retries=0)
    out = client.completions.create(
        model=model, prompt=PROMPT, max_tokens=8, temperature=0, extra_body=GREEDY
    )
    return out.choices[0].text


def token_row(session: Session, plaintext: str) -> ApiToken:
    """The stored row of a token, as the database has it now."""
    stmt = select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext))
    return session.execute(stmt.execution_options(populate_existing=True)).scalar_one()


def direct(engine: TailorEngine, key: str) -> str:
    req = GenerationRequest(prompt=PROMPT, adapter=key, max_new_tokens=8, **GREEDY)
    return engine.generate(req)[0].text


def test_a_published_endpoint_answers_with_its_version(
    gateway: LiveServer, published: Published, engine: TailorEngine
) -> None:
    assert complete(gateway, published.ide_token) == direct(engine, published.keys[0])


def test_promotion_is_served_on_the_next_request(
    gateway: LiveServer, published: Published, engine: TailorEngine, session: Session
) -> None:
    complete(gateway, published.ide_token)
    endpoint_service.promote(
        session, published.access, "completion", Promote(version=2), serves=None
    )
    session.commit()
    assert complete(gateway, published.ide_token) == direct(engine, published.keys[1])


def test_models_lists_the_teams_endpoints(gateway: LiveServer, published: Published) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=published.ide_token)
    assert {m.id for m in client.models.list()} == {"completion", SERVED_BASE}


def test_another_teams_token_gets_404(
    gateway: LiveServer, published: Published, session: Session
) -> None:
    other = create_tenant(session)
    token = create_token(session, other.owner, team=other.team, scopes=("inference",))
    session.commit()
    with pytest.raises(openai.NotFoundError):
        complete(gateway, token)


def test_a_token_without_the_inference_scope_is_refused(
    gateway: LiveServer, published: Published
) -> None:
    with pytest.raises(openai.AuthenticationError):
        complete(gateway, published.tenant.owner_token)


def test_a_revoked_token_is_refused_on_the_next_request(
    gateway: LiveServer, published: Published, session: Session
) -> None:
    complete(gateway, published.ide_token)
    revoke_team_token(session, published.access, token_row(session, published.ide_token).id)
    session.commit()
    with pytest.raises(openai.AuthenticationError):
        complete(gateway, published.ide_token)


def test_a_member_who_left_the_team_is_refused(
    routing: Routing, published: Published, session: Session
) -> None:
    viewer = published.tenant.viewer
    token = create_token(session, viewer, team=published.tenant.team, scopes=("inference",))
    remove_member(session, published.access, viewer.id)
    session.commit()
    assert routing.lookup(token, "completion") is None


def test_lookup_names_the_adapter_the_endpoint_serves(
    routing: Routing, published: Published
) -> None:
    caller = routing.lookup(published.ide_token, "completion")
    assert caller is not None and caller.adapter is not None
    assert (caller.team, store_prefix(caller.adapter)) == (published.tenant.slug, published.keys[0])


def test_a_team_re_created_under_a_deleted_teams_slug_is_served_its_own_adapter(
    gateway: LiveServer,
    published: Published,
    engine: TailorEngine,
    session: Session,
    adapters: AdapterFactory,
) -> None:
    old = complete(gateway, published.ide_token)  # the gateway now holds the old version
    slug = published.tenant.slug
    session.delete(published.tenant.team)
    session.commit()
    # The new team stores its version 1 where the deleted team's was (the store was purged).
    tenant = create_tenant(session, slug=slug)
    key = adapters.create(slug, "completion", "1", seed=23)
    create_version(session, tenant.team, "completion", 1)
    _access, ide_token = publish_version_1(session, tenant)

    new = complete(gateway, ide_token)
    assert new == direct(engine, key) and new != old


def test_lookup_of_a_model_the_team_has_not_published_is_unknown(
    routing: Routing, published: Published
) -> None:
    caller = routing.lookup(published.ide_token, "nonexistent")
    assert caller is not None
    assert (caller.team, caller.known) == (published.tenant.slug, False)


def test_lookup_records_the_tokens_use(
    routing: Routing, published: Published, session: Session
) -> None:
    routing.lookup(published.ide_token, None)
    assert token_row(session, published.ide_token).last_used_at is not None


def test_a_lookup_does_not_wait_for_a_writer(
    committed: sessionmaker[Session], db_engine: Engine
) -> None:
    with committed() as session:
        tenant = create_tenant(session)
        create_version(session, tenant.team, "completion", 1)
        _, token = publish_version_1(session, tenant)
    routing = Routing.on(db_engine)
    routing.lookup(token, "completion")  # its first use is recorded: a write
    with db_engine.begin() as writer:  # the API or a worker, mid-transaction (SQLite: locked)
        writer.execute(update(Team).where(Team.id == tenant.team.id).values(name="Renamed"))
        caller = routing.lookup(token, "completion")
    assert caller is not None and caller.known


# -- the lookup cache (PostgreSQL) -------------------------------------------------------------


@pytest.fixture
def cache(db_engine: Engine) -> Iterator[GrantCache]:
    """A cache emptied by the database's routing announcements, listening (ask for it after
    the fixtures that commit, or their announcements may empty it mid-test)."""
    with NotifiedCache[Any, Any](db_engine, routing_channel(db_engine), retry_s=0.05) as c:
        assert eventually(lambda: c.live)
        yield c


@dataclass
class CommittedTeam:
    """A team with versions 1 and 2, version 1 published and an IDE token, all committed."""

    committed: sessionmaker[Session]
    access: TeamAccess
    token: str

    @contextmanager
    def admin(self) -> Iterator[tuple[Session, TeamAccess]]:
        """A session that commits, and the team admin's access in it."""
        with self.committed.begin() as session:
            a = self.access
            yield session, team_for(session, a.principal, a.team.slug, Role.admin)


@pytest.fixture
def committed_team(committed: sessionmaker[Session]) -> CommittedTeam:
    with committed() as session:
        tenant = create_tenant(session)
        create_version(session, tenant.team, "completion", 1)
        create_version(session, tenant.team, "completion", 2)
        access, token = publish_version_1(session, tenant)
        return CommittedTeam(committed, access, token)


def counting_reads(routing: Routing) -> list[None]:
    """Make `routing` count its read transactions (the database round trips of a lookup)."""
    reads: list[None] = []
    read = routing.read

    def counted() -> AbstractContextManager[Connection]:
        reads.append(None)
        return read()

    routing.read = counted
    return reads


@ONLY_POSTGRESQL
def test_repeated_lookups_read_the_database_once(
    db_engine: Engine, committed_team: CommittedTeam, cache: GrantCache
) -> None:
    routing = Routing.on(db_engine, cache)
    reads = counting_reads(routing)
    answers = {routing.lookup(committed_team.token, "completion") for _ in range(3)}
    assert len(answers) == 1 and len(reads) == 1


@ONLY_POSTGRESQL
def test_a_revocation_reaches_a_cached_lookup(
    db_engine: Engine, committed_team: CommittedTeam, cache: GrantCache
) -> None:
    token, routing = committed_team.token, Routing.on(db_engine, cache)
    assert routing.lookup(token, "completion") is not None
    with committed_team.admin() as (session, admin):
        revoke_team_token(session, admin, token_row(session, token).id)
    assert eventually(lambda: routing.lookup(token, "completion") is None)


@ONLY_POSTGRESQL
def test_a_promotion_reaches_a_cached_lookup(
    db_engine: Engine, committed_team: CommittedTeam, cache: GrantCache
) -> None:
    token, routing = committed_team.token, Routing.on(db_engine, cache)
    first = routing.lookup(token, "completion")
    with committed_team.admin() as (session, admin):
        endpoint_service.promote(session, admin, "completion", Promote(version=2), serves=None)
    assert eventually(lambda: routing.lookup(token, "completion") != first)


@ONLY_POSTGRESQL
def test_recording_a_tokens_use_announces_nothing(
    db_engine: Engine, committed_team: CommittedTeam
) -> None:
    """Else every gateway's cache would be emptied once a minute per token."""
    channel = routing_channel(db_engine)
    with db_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as listener:
        listener.exec_driver_sql(f'LISTEN "{channel}"')
        Routing.on(db_engine).lookup(committed_team.token, None)  # its first use: recorded
        with db_engine.begin() as conn:  # a marker, announced after anything before it
            conn.execute(text("SELECT pg_notify(:c, 'marker')"), {"c": channel})
        driver = listener.connection.driver_connection
        assert driver is not None
        first = next(driver.notifies(timeout=10))
    assert token_row_used(db_engine, committed_team.token) and first.payload == "marker"


def token_row_used(engine: Engine, plaintext: str) -> bool:
    with engine.connect() as conn:
        stmt = select(ApiToken.last_used_at).where(ApiToken.token_hash == hash_token(plaintext))
        return conn.scalar(stmt) is not None


@ONLY_POSTGRESQL
def test_the_gateway_listens_while_it_runs(db_engine: Engine, engine: TailorEngine) -> None:
    cache: GrantCache = NotifiedCache(db_engine, routing_channel(db_engine), retry_s=0.05)
    routing = Routing.on(db_engine, cache)
    live = start_server(create_serving_app(engine, lookup=routing.lookup, resources=[cache]))
    try:
        assert eventually(lambda: cache.live)
    finally:
        live.stop()
    assert not cache.live


def test_lookup_carries_the_endpoints_repository_context_budget(
    routing: Routing, published: Published, session: Session
) -> None:
    on = routing.lookup(published.ide_token, "completion")
    body = ContextSettings(enabled=False)
    endpoint_service.set_context(session, published.access, "completion", body)
    session.commit()

    off = routing.lookup(published.ide_token, "completion")

    assert on is not None and off is not None
    assert (on.context_tokens, off.context_tokens) == (256, 0)


def test_the_teams_whose_endpoints_retrieve_context_are_preloaded_at_start(
    connection: Connection, published: Published, session: Session
) -> None:
    @contextmanager
    def savepoint() -> Iterator[Connection]:
        with connection.begin_nested():
            yield connection

    before = teams_with_context(savepoint)
    body = ContextSettings(enabled=False)
    endpoint_service.set_context(session, published.access, "completion", body)
    session.commit()

    assert published.tenant.slug in before
    assert published.tenant.slug not in teams_with_context(savepoint)
