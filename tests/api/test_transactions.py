"""A route's changes are committed before its response goes out, and duplicates are 409s.

The app here commits for real (the `committed` sessions), and the tests act at the moment
the response's last byte leaves the app: what a client does as soon as it has the answer,
from another connection (the gateway's own lookup), must find the change.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.main import create_app
from tailor.config import Settings
from tailor.db.models import Team
from tailor.gateway import Routing
from tailor.stages.serve.callers import Caller
from tailor.storage import FileStore
from tests.conftest import ONLY_POSTGRESQL, Tenant, create_tenant


@pytest.fixture
def live_app(
    settings: Settings, db_engine: Engine, committed: sessionmaker[Session], store: FileStore
) -> FastAPI:
    """The API on sessions that commit for real, as in production."""
    application = create_app(settings, engine=db_engine, store=store)
    application.state.sessionmaker = committed
    return application


@pytest.fixture
def live_tenant(committed: sessionmaker[Session]) -> Tenant:
    """A team with an owner and a viewer, committed for real."""
    with committed() as session:
        return create_tenant(session)


def as_sent(app: ASGIApp, on_sent: Callable[[str, bytes], None]) -> ASGIApp:
    """`app`, calling `on_sent(kind, body)` as a response starts ("start") and as its last
    byte goes out ("end"): the moment the client can act on it."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                on_sent("start", b"")
            if message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    on_sent("end", bytes(body))
            await send(message)

        await app(scope, receive, sending)

    return wrapped


def tokens_url(tenant: Tenant) -> str:
    return f"/v1/teams/{tenant.slug}/tokens"


def test_a_new_token_works_at_the_gateway_once_its_creation_is_answered(
    live_app: FastAPI, live_tenant: Tenant, db_engine: Engine
) -> None:
    routing = Routing.on(db_engine)
    seen: list[Caller | None] = []

    def on_sent(kind: str, body: bytes) -> None:
        if kind == "end":
            seen.append(routing.lookup(json.loads(body)["token"], None))

    with TestClient(as_sent(live_app, on_sent)) as client:
        resp = client.post(
            tokens_url(live_tenant),
            json={"name": "ide", "scopes": ["inference"]},
            headers=live_tenant.auth(),
        )
    assert resp.status_code == 201
    # The base model of the token's own team (ids for telemetry aside).
    assert [(c.team, c.adapter, c.known) if c else None for c in seen] == [
        (live_tenant.slug, None, True)
    ]


def test_a_revoked_token_is_refused_at_the_gateway_once_the_revocation_is_answered(
    live_app: FastAPI, live_tenant: Tenant, db_engine: Engine
) -> None:
    with TestClient(live_app) as client:
        created = client.post(
            tokens_url(live_tenant),
            json={"name": "ide", "scopes": ["inference"]},
            headers=live_tenant.auth(),
        ).json()
    routing = Routing.on(db_engine)
    seen: list[Caller | None] = []

    def on_sent(kind: str, _body: bytes) -> None:
        if kind == "end":
            seen.append(routing.lookup(created["token"], None))

    with TestClient(as_sent(live_app, on_sent)) as client:
        resp = client.delete(
            f"{tokens_url(live_tenant)}/{created['id']}", headers=live_tenant.auth()
        )
    assert resp.status_code == 204
    assert seen == [None]


def test_the_commit_comes_before_the_response_starts(
    live_app: FastAPI, live_tenant: Tenant, committed: sessionmaker[Session]
) -> None:
    order: list[str] = []
    event.listen(committed, "after_commit", lambda _session: order.append("commit"))
    with TestClient(as_sent(live_app, lambda kind, _body: order.append(kind))) as client:
        resp = client.patch(
            f"/v1/teams/{live_tenant.slug}", json={"name": "Renamed"}, headers=live_tenant.auth()
        )
    assert resp.status_code == 200
    assert order == ["commit", "start", "end"]


@pytest.fixture
def repositories_unique_by_url_at_commit(db_engine: Engine) -> Iterator[None]:
    """A deferred constraint: PostgreSQL checks it at COMMIT, after the route has returned."""
    name = "uq_repositories_url_at_commit"
    with db_engine.begin() as conn:
        conn.execute(
            text(
                f"ALTER TABLE repositories ADD CONSTRAINT {name} UNIQUE (team_id, url)"
                " DEFERRABLE INITIALLY DEFERRED"
            )
        )
    yield
    with db_engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE repositories DROP CONSTRAINT {name}"))


@ONLY_POSTGRESQL
def test_a_change_refused_at_commit_answers_409_and_is_not_kept(
    live_app: FastAPI, live_tenant: Tenant, repositories_unique_by_url_at_commit: None
) -> None:
    repos = f"/v1/teams/{live_tenant.slug}/repositories"
    with TestClient(live_app, raise_server_exceptions=False) as client:
        for name in ("a", "b"):
            url = f"https://git.example.com/{name}.git"
            client.post(repos, json={"name": name, "url": url}, headers=live_tenant.auth())
        resp = client.patch(
            f"{repos}/b", json={"url": "https://git.example.com/a.git"}, headers=live_tenant.auth()
        )
        kept = client.get(f"{repos}/b", headers=live_tenant.auth()).json()
    assert (resp.status_code, resp.json()["type"]) == (409, "https://tailor.dev/problems/conflict")
    assert kept["url"] == "https://git.example.com/b.git"


@ONLY_POSTGRESQL
def test_two_identical_creates_at_once_answer_201_and_409(
    live_app: FastAPI, live_tenant: Tenant, committed: sessionmaker[Session]
) -> None:
    # Both requests pass the service's "slug taken?" check before either inserts: the
    # database's unique constraint decides, and the loser waits for the winner's commit.
    both_checked = threading.Barrier(2, timeout=20)

    @event.listens_for(committed, "before_flush")
    def _meet(session: Session, _context: object, _instances: object) -> None:
        if any(isinstance(obj, Team) for obj in session.new):
            both_checked.wait()

    answers: list[tuple[int, str | None]] = []

    def create(headers: dict[str, str]) -> None:
        client = TestClient(live_app, raise_server_exceptions=False)  # a loop of its own
        resp = client.post("/v1/teams", json={"slug": "twin", "name": "Twin"}, headers=headers)
        answers.append((resp.status_code, resp.json().get("type")))

    callers = [live_tenant.auth("owner"), live_tenant.auth("viewer")]
    threads = [threading.Thread(target=create, args=(h,)) for h in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(answers) == [(201, None), (409, "https://tailor.dev/problems/conflict")]
