"""The gateway: team tokens and endpoint names resolved in Tailor's database, per request."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import openai
import pytest
from sqlalchemy.orm import Session, sessionmaker

from tailor.db.models import Role
from tailor.gateway import Routing
from tailor.registry import service as registry
from tailor.registry.schemas import EndpointCreate, Promote
from tailor.serve.app import create_serving_app
from tailor.serve.engine import TailorEngine
from tailor.serve.generation import GenerationRequest
from tailor.tenancy import TeamAccess, team_for
from tailor.tokens.service import authenticate
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
    access = team_for(session, authenticate(session, tenant.owner_token), tenant.slug, Role.admin)
    registry.publish(
        session, access, EndpointCreate(name="completion", adapter="completion", version=1)
    )
    ide_token = create_token(session, tenant.owner, team=tenant.team, scopes=("inference",))
    session.commit()
    return Published(tenant, access, ide_token, keys)


@pytest.fixture
def gateway(sessions: sessionmaker[Session], engine: TailorEngine) -> Iterator[LiveServer]:
    routing = Routing(sessions)
    live = start_server(
        create_serving_app(
            engine,
            authenticate=routing.authenticate,
            resolve_model=routing.resolve,
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
