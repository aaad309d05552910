"""/v1/internal/endpoints: the operator reports where an endpoint's pods answer (status.url),
and the gateway forwards the team's calls there."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tailor.db.models import Endpoint, Role
from tailor.services.endpoints import service as endpoint_service
from tailor.services.endpoints.schemas import EndpointCreate
from tailor.services.tokens.service import authenticate
from tailor.tenancy import team_for
from tests.conftest import SERVED_BASE, Tenant, create_version

URL = "http://completion.tailor-team-{slug}.svc.cluster.local"


def _publish(session: Session, tenant: Tenant) -> Endpoint:
    create_version(session, tenant.team, "completion", 1)
    access = team_for(session, authenticate(session, tenant.owner_token), tenant.slug, Role.admin)
    body = EndpointCreate(name="completion", adapter="completion", version=1)
    endpoint = endpoint_service.publish(session, access, body, serves=SERVED_BASE)
    session.commit()
    return endpoint


def _report(client: TestClient, slug: str, auth: dict[str, str], url: str) -> int:
    path = f"/v1/internal/endpoints/tailor-team-{slug}/completion/status"
    body = {"phase": "Ready", "reason": "Available", "url": url}
    return client.post(path, json=body, headers=auth).status_code


def test_a_reported_url_is_where_the_gateway_forwards(
    client: TestClient, session: Session, tenant: Tenant, admin_auth: dict[str, str]
) -> None:
    endpoint = _publish(session, tenant)

    status = _report(client, tenant.slug, admin_auth, URL.format(slug=tenant.slug))

    session.refresh(endpoint)
    assert status == 204
    assert endpoint.backend_url == URL.format(slug=tenant.slug)


def test_a_team_member_cannot_redirect_the_gateway(
    client: TestClient, session: Session, tenant: Tenant
) -> None:
    endpoint = _publish(session, tenant)

    status = _report(client, tenant.slug, tenant.auth(), "http://attacker.example")

    session.refresh(endpoint)
    assert status == 403
    assert endpoint.backend_url is None


def test_a_url_that_is_not_http_is_refused(
    client: TestClient, session: Session, tenant: Tenant, admin_auth: dict[str, str]
) -> None:
    endpoint = _publish(session, tenant)

    status = _report(client, tenant.slug, admin_auth, "file:///etc/passwd")

    session.refresh(endpoint)
    assert status == 422
    assert endpoint.backend_url is None


def test_an_endpoint_the_namespace_does_not_hold_is_not_found(
    client: TestClient, session: Session, tenant: Tenant, admin_auth: dict[str, str]
) -> None:
    _publish(session, tenant)

    assert _report(client, "someone-else", admin_auth, "http://x.svc") == 404
