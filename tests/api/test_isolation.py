"""Tenant isolation and token scopes, generated from the app's own route table.

Every route whose path names a team must answer 404 to another team's token and 403 to a
viewer's mutation, and every route under /v1 answers 403 to an inference-only token (it is
for the gateway). A new route that forgets to scope itself fails here.
"""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.main import create_app
from tailor.config import Settings
from tests.conftest import Tenant, create_token

MUTATIONS = {"POST", "PUT", "PATCH", "DELETE"}
# Single sign-on's CLI routes take no bearer token: they are how a person gets one, and each
# authenticates by what its body carries (a device code, a refresh token).
TOKENLESS = {"/v1/auth/device", "/v1/auth/device/token", "/v1/auth/refresh", "/v1/auth/sign-out"}
# Routes that take a job's own token (its pods'), no member's: any other token is not this job's.
JOB_TOKEN_ROUTES = {("POST", "/v1/internal/jobs/{job_id}/events")}


def api_routes() -> list[tuple[str, str]]:
    """(method, path template) of every /v1 route the real app publishes."""
    paths = create_app(Settings(workspace="/tmp/tailor-route-table")).openapi()["paths"]
    return sorted(
        (method.upper(), path)
        for path, ops in paths.items()
        if path.startswith("/v1/")
        for method in ops
    )


def team_routes() -> list[tuple[str, str]]:
    """(method, path template) of every team-scoped route the real app publishes."""
    return [(method, path) for method, path in api_routes() if "{team}" in path]


def fill(path: str, tenant: Tenant, resources: dict[str, str]) -> str:
    """The path with the team and existing resource ids of `tenant` filled in."""
    path = path.replace("{team}", tenant.slug)
    return re.sub(r"\{(\w+)\}", lambda m: resources.get(m.group(1), "1"), path)


@pytest.fixture
def resources(client: TestClient, tenant: Tenant) -> dict[str, str]:
    """Real resources in the tenant's team, so a 404 can only come from tenancy."""
    client.post(
        f"/v1/teams/{tenant.slug}/repositories",
        json={"name": "svc", "url": "https://git.example.com/svc.git"},
        headers=tenant.auth(),
    )
    token = client.post(
        f"/v1/teams/{tenant.slug}/tokens", json={"name": "ci"}, headers=tenant.auth()
    ).json()
    return {"name": "svc", "user_id": str(tenant.viewer.id), "token_id": str(token["id"])}


def test_the_route_table_has_team_routes() -> None:
    assert len(team_routes()) >= 15


@pytest.mark.parametrize(("method", "path"), team_routes())
def test_another_teams_token_gets_404(
    method: str,
    path: str,
    client: TestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    resources: dict[str, str],
) -> None:
    resp = client.request(
        method, fill(path, tenant, resources), json={}, headers=other_tenant.auth()
    )
    assert resp.status_code == 404, resp.text


@pytest.mark.parametrize(("method", "path"), [r for r in team_routes() if r[0] in MUTATIONS])
def test_a_viewer_gets_403_on_mutations(
    method: str, path: str, client: TestClient, tenant: Tenant, resources: dict[str, str]
) -> None:
    resp = client.request(
        method, fill(path, tenant, resources), json={}, headers=tenant.auth("viewer")
    )
    assert resp.status_code == 403, resp.text


def test_the_tokenless_routes_are_single_sign_ons_own() -> None:
    assert {path for _, path in api_routes() if path.startswith("/v1/auth/")} == TOKENLESS


@pytest.mark.parametrize(("method", "path"), [r for r in api_routes() if r[1] not in TOKENLESS])
def test_an_inference_token_gets_403_on_every_route(
    method: str,
    path: str,
    client: TestClient,
    tenant: Tenant,
    resources: dict[str, str],
    session: Session,
) -> None:
    # The owner's own token for their own team, and real resources: only its scope refuses.
    token = create_token(session, tenant.owner, team=tenant.team, scopes=("inference",))
    session.commit()
    resp = client.request(
        method,
        fill(path, tenant, resources),
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    # A job-token route refuses it as not the job's (401 where no job-token key is set).
    refused = {401, 404} if (method, path) in JOB_TOKEN_ROUTES else {403}
    assert resp.status_code in refused, resp.text


def test_an_unscoped_team_route_would_be_caught(
    app: FastAPI, tenant: Tenant, other_tenant: Tenant
) -> None:
    @app.get("/v1/teams/{team}/leaky")
    def leaky(team: str) -> dict[str, str]:
        return {"team": team}

    with TestClient(app) as c:
        resp = c.get(f"/v1/teams/{tenant.slug}/leaky", headers=other_tenant.auth())
    assert resp.status_code != 404  # the generated test above would flag this route
