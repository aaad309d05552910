"""API fixtures: the real app on the test's database and store, and an HTTP client."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from tailor.config import Settings
from tailor.queue import make_sender
from tailor.storage import FileStore
from tests.conftest import (
    Tenant,
    create_tenant,
    create_token,
    create_user,
    redis_db,
    register_base,
)


@pytest.fixture
def app(
    settings: Settings, connection: Connection, sessions: sessionmaker[Session], store: FileStore
) -> FastAPI:
    """The API, its sessions joined to the test's rolled-back transaction."""
    application = create_app(settings, engine=connection.engine, store=store)
    application.state.sessionmaker = sessions
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """An HTTP client for the API (errors become responses, as in production)."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def tenant(session: Session) -> Tenant:
    """A team with an owner and a viewer."""
    return create_tenant(session)


@pytest.fixture
def other_tenant(session: Session) -> Tenant:
    """A second, unrelated team."""
    return create_tenant(session)


@pytest.fixture
def admin_auth(session: Session) -> dict[str, str]:
    """The Authorization header of a platform admin's token (admin scope)."""
    admin = create_user(session, admin=True)
    token = create_token(session, admin, scopes=("read", "write", "admin"))
    session.commit()
    return {"Authorization": f"Bearer {token}"}


# Bases the API tests name; hub-id sources, since the API itself never loads them.
CATALOG = ("tiny-base", "tiny-instruct", "other-base", "third-base")


@pytest.fixture
def catalog(session: Session) -> tuple[str, ...]:
    """The platform's catalog holding the bases the adapter tests name."""
    for name in CATALOG:
        register_base(session, name, family="gpt_bigcode")
    return CATALOG


@pytest.fixture
def broker(app: FastAPI) -> Iterator[redis.Redis]:
    """The app sends tasks to a private Redis database; the test reads the queue there."""
    db = redis_db()
    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    client.flushdb()
    url = f"redis://127.0.0.1:6379/{db}"
    app.state.sender = make_sender(Settings(broker_url=url, result_backend=url))
    yield client
    client.flushdb()


def queued_tasks(broker: redis.Redis) -> list[tuple[str, list[object]]]:
    """(task name, args) of every message waiting in the default queue."""
    messages = [json.loads(raw) for raw in broker.lrange("celery", 0, -1)]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages]


@pytest.fixture
def live_url(app: FastAPI, broker: redis.Redis) -> Iterator[str]:
    """The test's app served over real HTTP, for the CLI to call."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join()
