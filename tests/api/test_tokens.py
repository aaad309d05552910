"""API tokens: shown once, hashed at rest, revocable, expiring, scoped."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tailor.db.base import utcnow
from tailor.db.models import ApiToken, AuditEvent, Role, User
from tailor.security import hash_token
from tailor.services.tokens.service import LAST_USED_PRECISION, authenticate
from tests.conftest import Tenant, add_member, create_token, create_user


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


# --- tokens are issued only to their caller; machine tokens are principals of their own


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def issue(client: TestClient, tenant: Tenant, token: str, **body: object) -> Response:
    """POST a token request to the tenant's team with `token` as the caller."""
    return client.post(f"/v1/teams/{tenant.slug}/tokens", json=body, headers=bearer(token))


def a_team_admin(session: Session, tenant: Tenant) -> tuple[User, str]:
    """A member with the admin role (below the owner) and a token of theirs, committed."""
    admin = create_user(session)
    add_member(session, tenant.team, admin, Role.admin)
    token = create_token(session, admin)
    session.commit()
    return admin, token


def test_an_admin_cannot_issue_a_token_in_the_owners_name_to_make_themself_owner(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    admin, admin_token = a_team_admin(session, tenant)
    # The reviewer's steps: a token "for" the owner, then, with it, the admin made owner.
    issued = issue(client, tenant, admin_token, name="x", user_id=tenant.owner.id)
    assert issued.status_code == 422, issued.text
    owners_tokens = (
        select(func.count()).select_from(ApiToken).where(ApiToken.user_id == tenant.owner.id)
    )
    assert session.scalar(owners_tokens) == 1  # the fixture's, nothing more
    promoted = client.patch(
        f"/v1/teams/{tenant.slug}/members/{admin.id}",
        json={"role": "owner"},
        headers=bearer(admin_token),
    )
    assert promoted.status_code == 403
    member = client.get(f"/v1/teams/{tenant.slug}/members/{admin.id}", headers=tenant.auth())
    assert member.json()["role"] == "admin"


def test_a_machine_token_is_audited_as_itself_and_the_person_who_issued_it(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    admin, admin_token = a_team_admin(session, tenant)
    machine = issue(client, tenant, admin_token, name="ci", machine_role="admin").json()
    assert machine["machine"] is True
    assert machine["user_id"] not in (admin.id, tenant.owner.id)

    resp = client.post(
        f"/v1/teams/{tenant.slug}/repositories",
        json={"name": "ci-made", "url": "https://git.example.com/ci-made.git"},
        headers=bearer(str(machine["token"])),
    )

    assert resp.status_code == 201, resp.text
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "repository.create")
    ).one()
    assert event.actor_user_id == machine["user_id"]
    assert event.actor.endswith(".invalid") and event.detail["issued_by"] == admin.email


def test_a_machine_token_cannot_be_stronger_than_its_issuer(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    _admin, admin_token = a_team_admin(session, tenant)
    users_before = session.scalar(select(func.count()).select_from(User))
    resp = issue(client, tenant, admin_token, name="ci", machine_role="owner")
    assert resp.status_code == 403 and "'owner' role" in resp.json()["detail"]
    assert session.scalar(select(func.count()).select_from(User)) == users_before


def test_a_machine_token_cannot_issue_tokens(client: TestClient, tenant: Tenant) -> None:
    machine = new_token(client, tenant, machine_role="admin")
    resp = issue(client, tenant, str(machine["token"]), name="more", machine_role="admin")
    assert resp.status_code == 403 and "machine token" in resp.json()["detail"]


def test_a_revoked_machine_token_leaves_the_team(client: TestClient, tenant: Tenant) -> None:
    machine = new_token(client, tenant, machine_role="member")
    members = f"/v1/teams/{tenant.slug}/members"
    listed = client.get(members, headers=tenant.auth()).json()["items"]
    assert any(m["user_id"] == machine["user_id"] and m["machine"] for m in listed)

    client.delete(f"/v1/teams/{tenant.slug}/tokens/{machine['id']}", headers=tenant.auth())

    listed = client.get(members, headers=tenant.auth()).json()["items"]
    assert all(m["user_id"] != machine["user_id"] for m in listed)


def test_a_member_sees_and_revokes_the_machine_tokens_they_issued(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    member = create_user(session)
    add_member(session, tenant.team, member, Role.member)
    member_token = create_token(session, member)
    session.commit()
    machine = issue(client, tenant, member_token, name="ci", machine_role="member").json()
    listed = client.get(f"/v1/teams/{tenant.slug}/tokens", headers=bearer(member_token)).json()
    assert machine["id"] in [t["id"] for t in listed["items"]]
    resp = client.delete(
        f"/v1/teams/{tenant.slug}/tokens/{machine['id']}", headers=bearer(member_token)
    )
    assert resp.status_code == 204


def test_an_inference_token_reads_nothing_through_the_api(
    client: TestClient, tenant: Tenant
) -> None:
    token = new_token(client, tenant, scopes=["inference"])["token"]
    resp = client.get(f"/v1/teams/{tenant.slug}/members", headers=bearer(str(token)))
    assert resp.status_code == 403
    assert "only at the inference gateway" in resp.json()["detail"]
