"""Starting, watching and cancelling harvests through the API (the pipeline runs elsewhere)."""

from __future__ import annotations

import redis
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session

from tailor.db.models import Dataset, Job, JobState
from tests.api.conftest import queued_tasks
from tests.conftest import Tenant, register_base


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


def harvested(session: Session, tenant: Tenant, uid: str, stats: dict[str, object]) -> None:
    """A dataset whose harvest succeeded with `stats`."""
    job = Job(uid=uid.replace("ds-", "ha-"), team_id=tenant.team.id, kind="harvest", spec={})
    job.state = JobState.succeeded
    session.add(job)
    session.flush()
    prefix = f"teams/{tenant.slug}/datasets/{uid}/"
    session.add(Dataset(uid=uid, team_id=tenant.team.id, job_id=job.id, prefix=prefix, stats=stats))
    session.flush()


def finetune(client: TestClient, tenant: Tenant, dataset_id: str) -> Response:
    body = {
        "base_model": "tiny",
        "team": tenant.slug,
        "dataset_id": dataset_id,
        "adapter_name": "style",
    }
    return client.post(f"/v1/teams/{tenant.slug}/finetunes", json=body, headers=tenant.auth())


def test_an_unchanged_re_harvest_shows_since_when_and_is_not_trained_on(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    register_base(session, "tiny")
    harvested(session, tenant, "ds-a1", {"files_kept": 40})
    harvested(session, tenant, "ds-a2", {"files_kept": 0, "unchanged_since": ["ds-a1"]})
    shown = client.get(f"/v1/teams/{tenant.slug}/datasets/ds-a2", headers=tenant.auth()).json()
    assert shown["unchanged_since"] == ["ds-a1"]
    resp = finetune(client, tenant, "ds-a2")
    assert resp.status_code == 422
    assert resp.json()["detail"] == (
        f"dataset 'ds-a2' of team '{tenant.slug}' has no files: the repositories have not "
        "changed since dataset ds-a1; train on ds-a1 instead"
    )
    assert queued_tasks(broker) == []


def test_a_fine_tune_of_an_empty_dataset_is_refused_before_it_is_queued(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    register_base(session, "tiny")
    harvested(session, tenant, "ds-e1", {"files_kept": 0})
    resp = finetune(client, tenant, "ds-e1")
    assert resp.status_code == 422 and "check the repositories and the harvest filters" in resp.text
    assert queued_tasks(broker) == []
