"""Tenant isolation generated from the route table: every console page of a team is scoped,
and no page opens to an inference-only token.

A new page that forgets to go through tenancy fails here, GET and POST alike.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import secrets
from datetime import timedelta

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from api import console
from tailor.db.base import utcnow
from tailor.db.models import ApiToken, WebSession
from tailor.security import hash_token
from tests.console.conftest import Console, Person, csrf_of, make_person, signed_in_client

# Pages anyone may open: signing in and out, the stylesheet and script, the redirect to them.
PUBLIC = {
    "/console",
    "/console/sign-in",
    "/console/sign-out",
    "/console/static/{name}",
    # Single sign-on: how someone without a session gets one (tests/identity covers them).
    "/console/sign-in/sso",
    "/console/sso/callback",
}


def console_routes(prefix: str = "/console") -> list[tuple[str, str]]:
    """(method, path) of every route under `prefix`, from every console module."""
    routes = []
    for info in pkgutil.iter_modules(console.__path__):
        module = importlib.import_module(f"api.console.{info.name}")
        router = getattr(module, "router", None)
        for route in getattr(router, "routes", []):
            if isinstance(route, APIRoute) and route.path.startswith(prefix):
                routes += [(method, route.path) for method in route.methods]
    return sorted(routes)


def console_team_routes() -> list[tuple[str, str]]:
    """(method, path) of every route under /console/teams/{team}."""
    return console_routes("/console/teams/{team}")


def test_the_route_table_has_the_team_pages() -> None:
    paths = {path for _, path in console_team_routes()}
    assert {"/console/teams/{team}", "/console/teams/{team}/jobs/{job_id}"} <= paths
    assert len(paths) > 20


@pytest.mark.parametrize(("method", "path"), console_team_routes())
def test_another_teams_route_answers_404(console: Console, method: str, path: str) -> None:
    alice, bob = make_person(console), make_person(console)
    with signed_in_client(console, alice.token) as client:
        home = client.get("/console/teams")
        data = {"csrf_token": csrf_of(home.text)} if method == "POST" else None

        def call(slug: str) -> httpx.Response:
            url = re.sub(r"\{(\w+)\}", lambda m: slug if m.group(1) == "team" else "1", path)
            return client.request(method, url, data=data)

        theirs, missing = call(bob.slug), call("no-such-team")
    assert theirs.status_code == 404, (method, path, theirs.status_code)
    # Another team's page reads exactly like a team that does not exist.
    assert theirs.text.replace(bob.slug, "no-such-team") == missing.text


def _inference_session(console: Console) -> tuple[Person, str]:
    """A console session held by an inference-only token, written straight to the database
    (signing in refuses such a token): the pages must refuse it all the same."""
    person = make_person(console, scopes=("inference",))
    session_id = secrets.token_urlsafe(32)
    with console.sessions() as session:
        token = session.scalars(
            select(ApiToken).where(ApiToken.token_hash == hash_token(person.token))
        ).one()
        session.add(
            WebSession(
                session_hash=hash_token(session_id),
                token_id=token.id,
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        session.commit()
    return person, session_id


@pytest.mark.parametrize(("method", "path"), [r for r in console_routes() if r[1] not in PUBLIC])
def test_an_inference_token_reaches_no_console_page(
    console: Console, method: str, path: str
) -> None:
    person, session_id = _inference_session(console)
    with httpx.Client(base_url=console.url, follow_redirects=False) as client:
        client.cookies.set("tailor_console", session_id)
        csrf = csrf_of(client.get("/console/sign-in").text)  # bound to this session's cookie
        url = re.sub(r"\{(\w+)\}", lambda m: person.slug if m.group(1) == "team" else "1", path)
        resp = client.request(method, url, data={"csrf_token": csrf} if method == "POST" else None)
    assert resp.status_code == 303, (method, path, resp.status_code)
    assert resp.headers["location"].startswith("/console/sign-in")
