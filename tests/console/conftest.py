"""Console fixtures: a live API server on a free port, seeded data, and headless chromium."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from tailor.config import Settings
from tailor.db import migrate
from tailor.db.models import Role, Team, User
from tailor.db.session import make_engine, session_factory
from tailor.storage import ObjectStore, get_store
from tests.conftest import add_member, create_team, create_token, create_user, redis_db

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UNLABELLED_FIELDS = """
    [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter((el) => !el.labels || el.labels.length === 0)
        .map((el) => el.name || el.id)
"""
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"


@dataclass
class Console:
    """The live server: where it listens, its database and store, and every page's HTML seen."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    settings: Settings
    store: ObjectStore
    pages_seen: dict[str, str] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """The real app (embedded SQLite, file store) served by uvicorn in a thread."""
    root = tmp_path_factory.mktemp("console")
    # Tasks go to a private Redis database; the tests play the worker themselves.
    broker = f"redis://127.0.0.1:6379/{redis_db()}"
    # The inference gateway's port is chosen now: the IDE settings pages name its URL.
    settings = Settings(
        workspace=root / "ws",
        git_allow_http=True,
        git_allow_loopback=True,
        broker_url=broker,
        result_backend=broker,
        serve_url=f"http://127.0.0.1:{_free_port()}",
    )
    settings.ensure_workspace()
    migrate.upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    # The settings' own store: the training subprocess finds it from the workspace.
    store = get_store(settings)
    app = create_app(settings, engine=engine, store=store)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the console server did not start")
        time.sleep(0.05)
    try:
        yield Console(f"http://127.0.0.1:{port}", engine, session_factory(engine), settings, store)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
        redis.Redis.from_url(broker).flushdb()  # the tasks nobody ran


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, driven by Playwright."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser, console: Console) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) with clipboard access for the copy buttons."""
    ctx = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 900})
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.url)
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A tab in the fresh profile."""
    return context.new_page()


@dataclass
class Person:
    """A user with a token, and the team they own (if any)."""

    user: User
    token: str
    team: Team | None = None

    @property
    def slug(self) -> str:
        assert self.team is not None
        return self.team.slug


def unique(prefix: str) -> str:
    """A slug no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def make_person(
    console: Console, *, with_team: bool = True, admin: bool = False, scopes: tuple[str, ...] = ()
) -> Person:
    """A user (owner of a fresh team unless told otherwise) with a committed token."""
    with console.sessions() as session:
        user = create_user(session, admin=admin)
        team = create_team(session, user, unique("team")) if with_team else None
        token = create_token(session, user, scopes=scopes or ("read", "write"))
        session.commit()
        session.refresh(user)
        if team is not None:
            session.refresh(team)
        session.expunge_all()
    return Person(user, token, team)


def join(console: Console, person: Person, team: Team, role: Role) -> None:
    """Make `person` a member of `team`."""
    with console.sessions() as session:
        add_member(session, team, session.get_one(User, person.user.id), role)
        session.commit()


CSRF_FIELD = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def csrf_of(html: str) -> str:
    """The CSRF value a page's forms carry."""
    found = CSRF_FIELD.search(html)
    assert found is not None, "the page has no form"
    return found.group(1)


@contextmanager
def signed_in_client(console: Console, token: str) -> Iterator[httpx.Client]:
    """An HTTP client (no browser) signed in through the sign-in form."""
    with httpx.Client(base_url=console.url, follow_redirects=False) as client:
        form = client.get("/console/sign-in")
        resp = client.post(
            "/console/sign-in",
            data={"csrf_token": csrf_of(form.text), "token": token, "next": "/console/teams"},
        )
        assert resp.status_code == 303, resp.text
        yield client


def sign_in(page: Page, token: str) -> None:
    """Sign in through the form, with the keyboard only."""
    page.goto("/console/sign-in")
    page.get_by_label("API token").fill(token)
    page.get_by_label("API token").press("Enter")
    page.wait_for_url(re.compile(r".*/console/teams.*"))


def snap(console: Console, page: Page, name: str) -> str:
    """Screenshot the page into test-artifacts/console/ and remember its HTML.

    Every page shot is also checked for form fields without a label.
    """
    unlabelled = page.evaluate(UNLABELLED_FIELDS)
    assert unlabelled == [], f"{name}: fields without a label: {unlabelled}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    html = page.content()
    console.pages_seen[name] = html
    return html
