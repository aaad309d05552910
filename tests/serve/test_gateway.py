"""The gateway: team tokens and endpoint names resolved in Tailor's database, per request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import openai
import pytest
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from tailor.db.models import ApiToken, Role, Team
from tailor.gateway import Routing
from tailor.registry import service as registry
from tailor.registry.schemas import EndpointCreate, Promote
from tailor.security import hash_token
from tailor.serve.app import create_serving_app
from tailor.serve.callers import Caller
from tailor.serve.engine import TailorEngine
from tailor.serve.generation import GenerationRequest
from tailor.tenancy import TeamAccess, team_for
from tailor.tokens.service import authenticate, revoke_team_token
from tests.conftest import Tenant, create_tenant, create_token, create_version

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
    registry.publish(
        session, access, EndpointCreate(name="completion", adapter="completion", version=1)
    )
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
    registry.promote(session, published.access, "completion", Promote(version=2))
    session.commit()
    assert complete(gateway, published.ide_token) == direct(engine, published.keys[1])


def test_models_lists_the_teams_endpoints(gateway: LiveServer, published: Published) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=published.ide_token)
    assert {m.id for m in client.models.list()} == {"completion", "<base>"}


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


def test_lookup_names_the_adapter_the_endpoint_serves(
    routing: Routing, published: Published
) -> None:
    caller = routing.lookup(published.ide_token, "completion")
    assert caller == Caller(published.tenant.slug, published.keys[0])


def test_lookup_of_a_model_the_team_has_not_published_is_unknown(
    routing: Routing, published: Published
) -> None:
    caller = routing.lookup(published.ide_token, "nonexistent")
    assert caller == Caller(published.tenant.slug, known=False)


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
