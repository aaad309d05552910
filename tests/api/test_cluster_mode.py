"""Cluster mode at the API's edge: endpoint changes queue the cluster sync after the commit.

What the sync does on the cluster is tested with the operator in tests/operator.
"""

from __future__ import annotations

import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.services.endpoints.sync import SYNC_TASK
from tests.api.conftest import queued_tasks
from tests.conftest import Tenant, create_version


def _on_the_cluster(app: FastAPI, settings: Settings) -> None:
    app.state.settings = settings.model_copy(update={"executor": "kubernetes"})


def _syncs(broker: redis.Redis) -> list[list[object]]:
    return [args for name, args in queued_tasks(broker) if name == SYNC_TASK]


def test_each_endpoint_change_queues_one_cluster_sync(
    app: FastAPI,
    client: TestClient,
    broker: redis.Redis,
    settings: Settings,
    tenant: Tenant,
    session: Session,
) -> None:
    _on_the_cluster(app, settings)
    create_version(session, tenant.team, version=1)
    create_version(session, tenant.team, version=2)
    base = f"/v1/teams/{tenant.slug}/endpoints"
    auth = tenant.auth()

    body = {"name": "completion", "adapter": "completion", "version": 1}
    assert client.post(base, json=body, headers=auth).status_code == 201
    assert client.post(f"{base}/completion/promote", json={"version": 2}, headers=auth).is_success
    assert client.post(f"{base}/completion/rollback", headers=auth).is_success
    assert client.delete(f"{base}/completion", headers=auth).status_code == 204

    assert _syncs(broker) == [[tenant.team.id, "completion"]] * 4


def test_a_refused_change_queues_nothing(
    app: FastAPI,
    client: TestClient,
    broker: redis.Redis,
    settings: Settings,
    tenant: Tenant,
    session: Session,
) -> None:
    _on_the_cluster(app, settings)
    create_version(session, tenant.team, version=1)
    base = f"/v1/teams/{tenant.slug}/endpoints"

    missing = client.post(f"{base}/completion/promote", json={"version": 1}, headers=tenant.auth())
    no_version = client.post(
        base, json={"name": "completion", "adapter": "completion", "version": 9},
        headers=tenant.auth(),
    )  # fmt: skip

    assert (missing.status_code, no_version.status_code) == (404, 404)
    assert _syncs(broker) == []


def test_the_embedded_mode_has_no_cluster_to_sync(
    client: TestClient, broker: redis.Redis, tenant: Tenant, session: Session
) -> None:
    create_version(session, tenant.team, version=1)

    body = {"name": "completion", "adapter": "completion"}
    published = client.post(f"/v1/teams/{tenant.slug}/endpoints", json=body, headers=tenant.auth())

    assert published.status_code == 201
    assert _syncs(broker) == []
