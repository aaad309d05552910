"""Tenant isolation generated from the route table: every console page of a team is scoped.

A new team page that forgets to go through tenancy fails here, GET and POST alike.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import httpx
import pytest
from fastapi.routing import APIRoute

from api import console
from tests.console.conftest import Console, make_person


def console_team_routes() -> list[tuple[str, str]]:
    """(method, path) of every route under /console/teams/{team}, from every console module."""
    routes = []
    for info in pkgutil.iter_modules(console.__path__):
        module = importlib.import_module(f"api.console.{info.name}")
        router = getattr(module, "router", None)
        for route in getattr(router, "routes", []):
            if isinstance(route, APIRoute) and route.path.startswith("/console/teams/{team}"):
                routes += [(method, route.path) for method in route.methods]
    return sorted(routes)


def test_the_route_table_has_the_team_pages() -> None:
    paths = {path for _, path in console_team_routes()}
    assert {"/console/teams/{team}", "/console/teams/{team}/jobs/{job_id}"} <= paths
    assert len(paths) > 20


@pytest.mark.parametrize(("method", "path"), console_team_routes())
def test_another_teams_route_answers_404(console: Console, method: str, path: str) -> None:
    alice, bob = make_person(console), make_person(console)
    with httpx.Client(base_url=console.url, follow_redirects=False) as client:
        client.cookies.set("tailor_console", alice.token)
        home = client.get("/console/teams")
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', home.text)
        assert csrf is not None
        data = {"csrf_token": csrf.group(1)} if method == "POST" else None

        def call(slug: str) -> httpx.Response:
            url = re.sub(r"\{(\w+)\}", lambda m: slug if m.group(1) == "team" else "1", path)
            return client.request(method, url, data=data)

        theirs, missing = call(bob.slug), call("no-such-team")
    assert theirs.status_code == 404, (method, path, theirs.status_code)
    # Another team's page reads exactly like a team that does not exist.
    assert theirs.text.replace(bob.slug, "no-such-team") == missing.text
