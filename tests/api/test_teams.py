"""Teams through the API."""

from __future__ import annotations

import uuid
from pathlib import Path

import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.models import Role
from tailor.demo.gitserver import GitServer
from tailor.jobs import service as jobs
from tailor.services.datasets.run import run_harvest_job
from tailor.storage import FileStore
from tests.conftest import Tenant, add_member, create_token, create_user, running_job


def test_creating_a_team_makes_the_caller_its_owner(client: TestClient, tenant: Tenant) -> None:
    resp = client.post(
        "/v1/teams", json={"slug": "payments", "name": "Payments"}, headers=tenant.auth()
    )
    assert resp.status_code == 201
    members = client.get("/v1/teams/payments/members", headers=tenant.auth()).json()["items"]
    assert [(m["email"], m["role"]) for m in members] == [(tenant.owner.email, "owner")]


def test_a_taken_slug_is_a_conflict(client: TestClient, tenant: Tenant) -> None:
    resp = client.post("/v1/teams", json={"slug": tenant.slug, "name": "x"}, headers=tenant.auth())
    assert resp.status_code == 409
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"] == "https://tailor.dev/problems/conflict"


def test_an_invalid_slug_is_explained(client: TestClient, tenant: Tenant) -> None:
    resp = client.post("/v1/teams", json={"slug": "Bad Slug!", "name": "x"}, headers=tenant.auth())
    assert resp.status_code == 422
    assert resp.json()["detail"].startswith("slug:")


def test_listing_teams_shows_only_the_callers(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    slugs = [t["slug"] for t in client.get("/v1/teams", headers=tenant.auth()).json()["items"]]
    assert slugs == [tenant.slug]


def test_lists_paginate_with_a_cursor(client: TestClient, tenant: Tenant) -> None:
    for i in range(5):
        client.post("/v1/teams", json={"slug": f"page-{i}", "name": "p"}, headers=tenant.auth())
    first = client.get("/v1/teams?limit=4", headers=tenant.auth()).json()
    second = client.get(
        f"/v1/teams?limit=4&cursor={first['next_cursor']}", headers=tenant.auth()
    ).json()
    seen = [t["slug"] for t in first["items"] + second["items"]]
    assert len(seen) == 6 and len(set(seen)) == 6 and second["next_cursor"] is None


def test_a_garbled_cursor_is_a_clear_error(client: TestClient, tenant: Tenant) -> None:
    resp = client.get("/v1/teams?cursor=%%%", headers=tenant.auth())
    assert resp.status_code == 422
    assert "cursor" in resp.json()["detail"]


def test_only_platform_admins_change_gpu_quota(client: TestClient, tenant: Tenant) -> None:
    resp = client.patch(f"/v1/teams/{tenant.slug}", json={"gpu_quota": 8}, headers=tenant.auth())
    assert resp.status_code == 403


def test_the_last_owner_cannot_leave(client: TestClient, tenant: Tenant) -> None:
    resp = client.delete(
        f"/v1/teams/{tenant.slug}/members/{tenant.owner.id}", headers=tenant.auth()
    )
    assert resp.status_code == 409
    assert "at least one owner" in resp.json()["detail"]


def test_requests_without_a_token_are_unauthorized(client: TestClient) -> None:
    resp = client.get("/v1/teams")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"


def test_a_nul_character_is_refused_and_nothing_is_stored(
    client: TestClient, tenant: Tenant
) -> None:
    resp = client.post(
        "/v1/teams", json={"slug": "nul-team", "name": "bad\x00name"}, headers=tenant.auth()
    )
    assert (resp.status_code, resp.json()["type"]) == (
        422,
        "https://tailor.dev/problems/invalid-input",
    )
    assert client.get("/v1/teams/nul-team", headers=tenant.auth()).status_code == 404


def test_only_an_owner_makes_owners(client: TestClient, tenant: Tenant, session: Session) -> None:
    admin = create_user(session)
    add_member(session, tenant.team, admin, Role.admin)
    as_admin = {"Authorization": f"Bearer {create_token(session, admin)}"}
    session.commit()
    members = f"/v1/teams/{tenant.slug}/members"

    by_admin = [
        client.post(members, json={"email": "new@example.com", "role": "owner"}, headers=as_admin),
        client.patch(f"{members}/{admin.id}", json={"role": "owner"}, headers=as_admin),
        client.patch(f"{members}/{tenant.viewer.id}", json={"role": "owner"}, headers=as_admin),
    ]
    by_owner = client.patch(f"{members}/{admin.id}", json={"role": "owner"}, headers=tenant.auth())

    assert [r.status_code for r in by_admin] == [403, 403, 403]
    assert by_owner.status_code == 200 and by_owner.json()["role"] == "owner"


def test_a_machine_tokens_address_cannot_be_invited(client: TestClient, tenant: Tenant) -> None:
    machine = client.post(
        f"/v1/teams/{tenant.slug}/tokens",
        json={"name": "ci", "machine_role": "viewer"},
        headers=tenant.auth(),
    ).json()
    email = client.get(
        f"/v1/teams/{tenant.slug}/members/{machine['user_id']}", headers=tenant.auth()
    ).json()["email"]
    client.post("/v1/teams", json={"slug": "elsewhere", "name": "e"}, headers=tenant.auth())
    resp = client.post(
        "/v1/teams/elsewhere/members", json={"email": email, "role": "admin"}, headers=tenant.auth()
    )
    assert resp.status_code == 422


TOKEN = "tok-team-deletion-4e1a"


def harvested_team(
    client: TestClient,
    tenant: Tenant,
    git: GitServer,
    sessions: sessionmaker[Session],
    settings: Settings,
    store: FileStore,
    slug: str,
) -> str:
    """A new team `slug` with one harvested dataset; the dataset's id."""
    created = client.post("/v1/teams", json={"slug": slug, "name": "P"}, headers=tenant.auth())
    repo = {"name": "api", "url": git.url("api"), "credential_kind": "token", "credential": TOKEN}
    added = client.post(f"/v1/teams/{slug}/repositories", json=repo, headers=tenant.auth())
    assert (created.status_code, added.status_code) == (201, 201)
    dataset = client.post(f"/v1/teams/{slug}/datasets", json={}, headers=tenant.auth()).json()
    run_harvest_job(sessions, store, settings, dataset["job_id"])
    shown = client.get(f"/v1/teams/{slug}/datasets/{dataset['id']}", headers=tenant.auth())
    assert shown.json()["state"] == "succeeded"
    return str(dataset["id"])


def test_a_new_team_with_a_deleted_teams_slug_sees_nothing_of_it(
    client: TestClient,
    tenant: Tenant,
    broker: redis.Redis,
    sessions: sessionmaker[Session],
    settings: Settings,
    store: FileStore,
    tmp_path: Path,
) -> None:
    slug = f"reused-{uuid.uuid4().hex[:6]}"
    settings.git_allow_loopback = True  # the test's git server (the app shares these settings)
    with GitServer(tmp_path / "git", tokens={TOKEN}) as git:
        git.create_repo("api", {"billing/ledger.py": "def total(xs):\n    return sum(xs)\n"})
        old = harvested_team(client, tenant, git, sessions, settings, store, slug)
    assert store.list(f"teams/{slug}/") and any((settings.workspace / "git-cache").iterdir())
    deleted = client.delete(f"/v1/teams/{slug}?confirm={slug}", headers=tenant.auth())
    assert deleted.status_code == 204
    again = client.post("/v1/teams", json={"slug": slug, "name": "New"}, headers=tenant.auth())
    assert again.status_code == 201
    datasets = client.get(f"/v1/teams/{slug}/datasets", headers=tenant.auth()).json()["items"]
    old_one = client.get(f"/v1/teams/{slug}/datasets/{old}", headers=tenant.auth())
    assert (datasets, old_one.status_code) == ([], 404)
    # What a training run or an evaluation naming the old dataset's id would read:
    assert store.list(f"teams/{slug}/") == []
    assert list((settings.workspace / "git-cache").iterdir()) == []


def test_leftovers_under_a_slug_are_gone_when_a_team_takes_it(
    client: TestClient, tenant: Tenant, store: FileStore
) -> None:
    store.put_bytes("teams/late-writes/datasets/ds-1/shard-00000.parquet", b"old team's code")
    assert client.post(
        "/v1/teams", json={"slug": "late-writes", "name": "L"}, headers=tenant.auth()
    )
    assert store.list("teams/late-writes/") == []


def test_deleting_a_team_whose_job_a_live_worker_runs_is_refused(
    client: TestClient, tenant: Tenant, session: Session, store: FileStore, live_worker: str
) -> None:
    job = running_job(session, tenant, live_worker)
    store.put_bytes(f"teams/{tenant.slug}/datasets/ds-1/manifest.json", b"{}")
    resp = client.delete(f"/v1/teams/{tenant.slug}", headers=tenant.auth())
    assert (resp.status_code, resp.json()["jobs"]) == (409, [job.uid])
    assert "cancel them" in resp.json()["detail"]
    assert client.get(f"/v1/teams/{tenant.slug}", headers=tenant.auth()).status_code == 200
    assert store.list(f"teams/{tenant.slug}/") != []


def test_deleting_a_team_cancels_its_queued_jobs_and_those_of_dead_workers(
    client: TestClient, tenant: Tenant, session: Session, dead_worker: str
) -> None:
    running_job(session, tenant, dead_worker)
    jobs.create_system_job(session, tenant.team.id, "evaluation", {})
    session.commit()
    assert client.delete(f"/v1/teams/{tenant.slug}", headers=tenant.auth()).status_code == 204
    assert client.get(f"/v1/teams/{tenant.slug}", headers=tenant.auth()).status_code == 404
