"""API tokens: shown once, hashed at rest, revocable, expiring, scoped."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db.base import utcnow
from tailor.db.models import ApiToken
from tailor.security import hash_token
from tailor.tokens.service import LAST_USED_PRECISION, authenticate
from tests.conftest import Tenant


def new_token(client: TestClient, tenant: Tenant, **body: object) -> dict[str, object]:
    resp = client.post(
        f"/v1/teams/{tenant.slug}/tokens", json={"name": "cli", **body}, headers=tenant.auth()
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_a_token_is_shown_once_and_stored_as_a_hash(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    created = new_token(client, tenant)
    listed = client.get(f"/v1/teams/{tenant.slug}/tokens", headers=tenant.auth()).text
    assert created["token"] not in listed and created["prefix"] in listed
    stored = session.scalars(select(ApiToken)).all()
    assert all(created["token"] not in (t.token_hash, t.prefix) for t in stored)


def test_a_new_token_works(client: TestClient, tenant: Tenant) -> None:
    token = new_token(client, tenant)["token"]
    resp = client.get(f"/v1/teams/{tenant.slug}", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200


def test_a_revoked_token_stops_working(client: TestClient, tenant: Tenant) -> None:
    created = new_token(client, tenant)
    client.delete(f"/v1/teams/{tenant.slug}/tokens/{created['id']}", headers=tenant.auth())
    resp = client.get("/v1/teams", headers={"Authorization": f"Bearer {created['token']}"})
    assert resp.status_code == 401


def test_an_expired_token_is_refused(client: TestClient, tenant: Tenant, session: Session) -> None:
    created = new_token(client, tenant)
    row = session.get_one(ApiToken, created["id"])
    row.expires_at = utcnow() - timedelta(minutes=1)
    session.commit()
    resp = client.get("/v1/teams", headers={"Authorization": f"Bearer {created['token']}"})
    assert resp.status_code == 401 and "expired" in resp.json()["detail"]


def test_a_read_only_token_cannot_mutate(client: TestClient, tenant: Tenant) -> None:
    token = new_token(client, tenant, scopes=["read"])["token"]
    resp = client.post(
        f"/v1/teams/{tenant.slug}/repositories",
        json={"name": "r", "url": "https://git.example.com/r.git"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 403 and "write" in resp.json()["detail"]


def test_a_team_bound_token_cannot_see_the_users_other_teams(
    client: TestClient, tenant: Tenant
) -> None:
    client.post("/v1/teams", json={"slug": "second", "name": "s"}, headers=tenant.auth())
    token = new_token(client, tenant)["token"]
    resp = client.get("/v1/teams/second", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 404


def test_the_admin_scope_cannot_be_granted(client: TestClient, tenant: Tenant) -> None:
    resp = client.post(
        f"/v1/teams/{tenant.slug}/tokens",
        json={"name": "x", "scopes": ["admin"]},
        headers=tenant.auth(),
    )
    assert resp.status_code == 422


def test_a_token_used_again_within_a_minute_is_not_written_again(
    tenant: Tenant, session: Session
) -> None:
    authenticate(session, tenant.owner_token)
    session.commit()
    authenticate(session, tenant.owner_token)
    assert not session.dirty  # the second request writes nothing


def test_a_token_used_after_a_while_records_when(tenant: Tenant, session: Session) -> None:
    row = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == hash_token(tenant.owner_token))
    ).one()
    before = utcnow() - LAST_USED_PRECISION - timedelta(seconds=1)
    row.last_used_at = before
    session.commit()
    authenticate(session, tenant.owner_token)
    assert row.last_used_at is not None and row.last_used_at > before
