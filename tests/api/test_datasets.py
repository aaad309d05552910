"""Starting, watching and cancelling harvests through the API (the pipeline runs elsewhere)."""

from __future__ import annotations

import redis
from fastapi.testclient import TestClient

from tests.api.conftest import queued_tasks
from tests.conftest import Tenant


def add_repo(client: TestClient, tenant: Tenant, name: str = "svc") -> None:
    resp = client.post(
        f"/v1/teams/{tenant.slug}/repositories",
        json={"name": name, "url": f"https://git.example.com/{name}.git"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 201


def test_starting_a_harvest_queues_one_task(
    client: TestClient, tenant: Tenant, broker: redis.Redis
) -> None:
    add_repo(client, tenant)
    resp = client.post(f"/v1/teams/{tenant.slug}/datasets", json={}, headers=tenant.auth())
    assert resp.status_code == 202
    body = resp.json()
    assert (body["state"], body["repositories"]) == ("queued", ["svc"])
    assert queued_tasks(broker) == [("tailor.harvest", [body["job_id"]])]


def test_unknown_repositories_are_named_and_nothing_is_queued(
    client: TestClient, tenant: Tenant, broker: redis.Redis
) -> None:
    add_repo(client, tenant)
    resp = client.post(
        f"/v1/teams/{tenant.slug}/datasets",
        json={"repositories": ["svc", "ghost"]},
        headers=tenant.auth(),
    )
    assert resp.status_code == 422 and "ghost" in resp.json()["detail"]
    assert queued_tasks(broker) == []
    assert (
        client.get(f"/v1/teams/{tenant.slug}/datasets", headers=tenant.auth()).json()["items"] == []
    )


def test_a_team_without_repositories_is_told_to_register_one(
    client: TestClient, tenant: Tenant, broker: redis.Redis
) -> None:
    resp = client.post(f"/v1/teams/{tenant.slug}/datasets", json={}, headers=tenant.auth())
    assert resp.status_code == 422 and "register one" in resp.json()["detail"]


def test_unknown_spec_fields_are_refused(
    client: TestClient, tenant: Tenant, broker: redis.Redis
) -> None:
    add_repo(client, tenant)
    resp = client.post(
        f"/v1/teams/{tenant.slug}/datasets", json={"dedupe": True}, headers=tenant.auth()
    )
    assert resp.status_code == 422 and "dedupe" in resp.text


def test_cancelling_a_queued_harvest_finishes_it(
    client: TestClient, tenant: Tenant, broker: redis.Redis
) -> None:
    add_repo(client, tenant)
    ds = client.post(f"/v1/teams/{tenant.slug}/datasets", json={}, headers=tenant.auth()).json()
    resp = client.post(f"/v1/teams/{tenant.slug}/datasets/{ds['id']}/cancel", headers=tenant.auth())
    assert resp.json()["state"] == "cancelled"
    events = client.get(
        f"/v1/teams/{tenant.slug}/jobs/{ds['job_id']}/events", headers=tenant.auth()
    ).json()
    assert [e["message"] for e in events] == ["harvest job queued", "job cancelled"]


def test_a_running_harvest_cannot_be_deleted(
    client: TestClient, tenant: Tenant, broker: redis.Redis
) -> None:
    add_repo(client, tenant)
    ds = client.post(f"/v1/teams/{tenant.slug}/datasets", json={}, headers=tenant.auth()).json()
    resp = client.delete(f"/v1/teams/{tenant.slug}/datasets/{ds['id']}", headers=tenant.auth())
    assert resp.status_code == 409 and "cancel" in resp.json()["detail"]
