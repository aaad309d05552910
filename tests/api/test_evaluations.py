"""Starting evaluations through the API: only on the team's own, harvested datasets."""

from __future__ import annotations

import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.api.conftest import queued_tasks
from tests.api.test_datasets import harvested
from tests.conftest import Tenant, create_version, register_base


def evaluate(client: TestClient, tenant: Tenant, dataset_id: str) -> int:
    body = {"adapter": "completion", "dataset_id": dataset_id}
    resp = client.post(f"/v1/teams/{tenant.slug}/evaluations", json=body, headers=tenant.auth())
    return resp.status_code


def test_an_evaluation_on_another_teams_dataset_is_not_found(
    client: TestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session: Session,
    broker: redis.Redis,
) -> None:
    register_base(session, "tiny-base")
    create_version(session, tenant.team)
    harvested(session, other_tenant, "ds-theirs", {"files_kept": 40})
    session.commit()
    assert evaluate(client, tenant, "ds-theirs") == 404
    assert queued_tasks(broker) == []


def test_an_evaluation_on_an_empty_dataset_is_refused(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    register_base(session, "tiny-base")
    create_version(session, tenant.team)
    harvested(session, tenant, "ds-empty", {"files_kept": 0})
    session.commit()
    assert evaluate(client, tenant, "ds-empty") == 422
    assert queued_tasks(broker) == []


def test_an_evaluation_on_the_teams_dataset_is_queued(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    register_base(session, "tiny-base")
    create_version(session, tenant.team)
    harvested(session, tenant, "ds-ours", {"files_kept": 40})
    session.commit()
    assert evaluate(client, tenant, "ds-ours") == 202
    assert [name for name, _ in queued_tasks(broker)] == ["tailor.evaluate"]
