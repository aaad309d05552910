"""NUL characters are refused in every body FastAPI reads as JSON or as a form, before any write.

PostgreSQL cannot store them in text and SQLite can: without the check the two databases
would answer the same request differently (a 201 on one, an error on the other).
"""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Tenant

REFUSED = (422, "text must not contain NUL characters")

JSON_TYPES = [
    "application/json",
    "Application/JSON",
    "application/json; charset=utf-8",
    "APPLICATION/JSON ; charset=UTF-8",
    "application/merge-patch+json",
    "application/vnd.tailor+json",
    "application/problem+JSON",
]


@pytest.mark.parametrize("content_type", JSON_TYPES)
def test_a_json_body_of_any_json_type_with_nul_is_refused_and_nothing_is_stored(
    client: TestClient, tenant: Tenant, content_type: str
) -> None:
    body = json.dumps({"slug": "nul-team", "name": "bad\x00name"})
    resp = client.post(
        "/v1/teams",
        content=body,
        headers={**tenant.auth(), "Content-Type": content_type},
    )
    assert (resp.status_code, resp.json()["detail"]) == REFUSED
    assert client.get("/v1/teams/nul-team", headers=tenant.auth()).status_code == 404


def test_a_patch_as_merge_patch_with_nul_changes_nothing(
    client: TestClient, tenant: Tenant
) -> None:
    resp = client.patch(
        f"/v1/teams/{tenant.slug}",
        content=json.dumps({"name": "x\x00y"}),
        headers={**tenant.auth(), "Content-Type": "application/merge-patch+json"},
    )
    assert (resp.status_code, resp.json()["detail"]) == REFUSED
    team = client.get(f"/v1/teams/{tenant.slug}", headers=tenant.auth()).json()
    assert team["name"] == tenant.team.name


def _signed_in(client: TestClient, token: str) -> str:
    """Sign in to the console through its form; the CSRF value for the next form."""
    page = client.get("/console/sign-in").text
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert csrf is not None
    client.post(
        "/console/sign-in",
        data={"csrf_token": csrf.group(1), "token": token, "next": "/console/teams"},
        follow_redirects=False,
    )
    page = client.get("/console/teams").text
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert csrf is not None
    return csrf.group(1)


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "Application/X-WWW-Form-URLEncoded; charset=utf-8"],
)
def test_a_form_of_any_spelling_with_nul_is_refused_and_nothing_is_stored(
    client: TestClient, tenant: Tenant, content_type: str
) -> None:
    csrf = _signed_in(client, tenant.owner_token)
    resp = client.post(
        "/console/teams",
        content=f"csrf_token={csrf}&slug=nul-form&name=bad%00name",
        headers={"Content-Type": content_type},
        follow_redirects=False,
    )
    # The console's own page says why (not a database error turned into JSON).
    assert resp.status_code == 422 and resp.headers["content-type"].startswith("text/html")
    assert "text must not contain NUL characters" in resp.text
    assert client.get("/v1/teams/nul-form", headers=tenant.auth()).status_code == 404
