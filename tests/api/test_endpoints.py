"""Publishing, promoting and rolling back adapter versions."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.db.models import AuditEvent
from tests.conftest import Tenant, create_version


def publish(client: TestClient, tenant: Tenant, **body: object) -> dict[str, object]:
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints",
        json={"name": "completion", "adapter": "completion", **body},
        headers=tenant.auth(),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_publishing_serves_the_latest_version(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    create_version(session, tenant.team, version=1)
    create_version(session, tenant.team, version=2)
    assert publish(client, tenant)["version"] == 2


def test_promote_then_rollback(client: TestClient, tenant: Tenant, session: Session) -> None:
    create_version(session, tenant.team, version=1)
    publish(client, tenant, version=1)
    create_version(session, tenant.team, version=2)
    base = f"/v1/teams/{tenant.slug}/endpoints/completion"
    promoted = client.post(f"{base}/promote", json={"version": 2}, headers=tenant.auth()).json()
    assert (promoted["version"], promoted["previous_version"]) == (2, 1)
    rolled = client.post(f"{base}/rollback", headers=tenant.auth()).json()
    assert (rolled["version"], rolled["previous_version"]) == (1, 2)


def test_promotion_is_audited(client: TestClient, tenant: Tenant, session: Session) -> None:
    create_version(session, tenant.team, version=1)
    publish(client, tenant)
    create_version(session, tenant.team, version=2)
    client.post(
        f"/v1/teams/{tenant.slug}/endpoints/completion/promote",
        json={"version": 2},
        headers=tenant.auth(),
    )
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.team_id == tenant.team.id)
    ).all()
    assert "endpoint.promote" in actions


def test_a_version_in_use_cannot_be_deleted(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    create_version(session, tenant.team, version=1)
    publish(client, tenant)
    resp = client.delete(
        f"/v1/teams/{tenant.slug}/adapters/completion/versions/1", headers=tenant.auth()
    )
    assert resp.status_code == 409 and "completion" in resp.json()["detail"]
    versions = client.get(
        f"/v1/teams/{tenant.slug}/adapters/completion/versions", headers=tenant.auth()
    ).json()
    assert [v["version"] for v in versions] == [1]


def test_the_publish_gate_refuses_an_unevaluated_version(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    tenant.team.publish_policy = {"min_fim_exact_match_delta_points": 0.0}
    session.commit()
    create_version(session, tenant.team, version=1)
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints",
        json={"name": "completion", "adapter": "completion"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 409 and "evaluat" in resp.json()["detail"]


def test_overriding_the_gate_is_audited(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    tenant.team.publish_policy = {"min_fim_exact_match_delta_points": 0.0}
    session.commit()
    create_version(session, tenant.team, version=1)
    assert publish(client, tenant, override_gate=True)["gate_overridden"] is True
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "endpoint.publish")).one()
    assert event.detail["override_gate"] is True


def test_another_teams_adapter_cannot_be_published(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, session: Session
) -> None:
    create_version(session, other_tenant.team, version=1)
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints",
        json={"name": "completion", "adapter": "completion"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 404


def test_publishing_a_version_on_another_base_than_the_pool_serves_is_refused(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    create_version(session, tenant.team, version=1, base="starcoder2-3b")
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints",
        json={"name": "completion", "adapter": "completion"},
        headers=tenant.auth(),
    )
    problem = resp.json()
    assert resp.status_code == 409 and problem["type"].endswith("/base-model-mismatch")
    assert "'starcoder2-3b'" in problem["detail"] and "'tiny-starcoder'" in problem["detail"]
    listed = client.get(f"/v1/teams/{tenant.slug}/endpoints", headers=tenant.auth()).json()
    assert listed == []


def test_promoting_onto_a_pool_that_now_serves_another_base_is_refused(
    app: FastAPI, client: TestClient, tenant: Tenant, session: Session, settings: Settings
) -> None:
    create_version(session, tenant.team, version=1)
    publish(client, tenant, version=1)
    create_version(session, tenant.team, version=2)
    # The admin pointed the gateway at another base since the endpoint was published.
    app.state.settings = settings.model_copy(update={"serve_base_model": "starcoder2-3b"})
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints/completion/promote",
        json={"version": 2},
        headers=tenant.auth(),
    )
    assert resp.status_code == 409 and "'starcoder2-3b'" in resp.json()["detail"]
    endpoint = client.get(f"/v1/teams/{tenant.slug}/endpoints/completion", headers=tenant.auth())
    assert endpoint.json()["version"] == 1
