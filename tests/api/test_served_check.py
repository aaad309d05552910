"""The served check through the API: queued after publish, on request, visible as a job."""

from __future__ import annotations

import json

import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tailor.cli.main import app as cli_app
from tests.api.conftest import queued_tasks
from tests.api.test_endpoints import publish
from tests.conftest import Tenant, create_version

CHECK_TASK = "tailor.endpoint.served_check"


def test_publishing_an_evaluated_version_queues_its_served_check(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    create_version(session, tenant.team, version=1)
    publish(client, tenant)
    jobs = client.get(
        f"/v1/teams/{tenant.slug}/jobs", params={"kind": "served-check"}, headers=tenant.auth()
    ).json()["items"]
    assert [j["spec"]["endpoint"] for j in jobs] == ["completion"]
    assert queued_tasks(broker) == [(CHECK_TASK, [jobs[0]["id"]])]


def test_a_served_check_can_be_asked_for_again(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    create_version(session, tenant.team, version=1)
    publish(client, tenant)
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints/completion/served-check", headers=tenant.auth()
    )
    assert resp.status_code == 202, resp.text
    assert (CHECK_TASK, [resp.json()["id"]]) in queued_tasks(broker)


def test_another_teams_endpoint_cannot_be_checked(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, session: Session
) -> None:
    create_version(session, other_tenant.team, version=1)
    publish(client, other_tenant)
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints/completion/served-check", headers=tenant.auth()
    )
    assert resp.status_code == 404


def test_the_cli_asks_for_a_served_check(live_url: str, tenant: Tenant, session: Session) -> None:
    create_version(session, tenant.team, version=1)
    env = {"TAILOR_URL": live_url, "TAILOR_TOKEN": tenant.owner_token}
    runner = CliRunner()
    runner.invoke(cli_app, ["endpoint", "publish", tenant.slug, "completion"], env=env)
    args = ["endpoint", "check", tenant.slug, "completion", "--no-follow", "-o", "json"]
    result = runner.invoke(cli_app, args, env=env)
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert (job["kind"], job["state"], job["spec"]["endpoint"]) == (
        "served-check",
        "queued",
        "completion",
    )
