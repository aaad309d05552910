"""/v1/teams/{team}/telemetry: a team's completion statistics, to its members only."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.conftest import Tenant
from tests.telemetry.factories import record


def test_the_team_reads_its_acceptance_rate_latency_and_tokens(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    for latency in (10.0, 20.0, 30.0, 40.0):
        record(session, tenant.team, tenant.owner, kinds=("view", "select"), latency_ms=latency)
    record(session, tenant.team, tenant.viewer, kinds=("view", "dismiss"), language="go")
    record(session, tenant.team, tenant.viewer)  # never reported on: not in the rate
    session.commit()
    resp = client.get(f"/v1/teams/{tenant.slug}/telemetry", headers=tenant.auth())
    assert resp.status_code == 200
    body = resp.json()
    total = body["total"]
    assert (total["completions"], total["reported"], total["accepted"]) == (6, 5, 4)
    assert total["acceptance_rate"] == 0.8
    assert total["prompt_tokens"] == 60
    owner = next(s for s in body["by_member"] if s["key"] == tenant.owner.email)
    assert (owner["acceptance_rate"], owner["latency_p50_ms"], owner["latency_p95_ms"]) == (
        1.0,
        20.0,
        40.0,
    )
    assert {s["key"]: s["completions"] for s in body["by_language"]} == {"go": 1, "python": 5}


def test_another_team_sees_none_of_it(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, session: Session
) -> None:
    record(session, tenant.team, tenant.owner, kinds=("select",))
    session.commit()
    theirs = client.get(f"/v1/teams/{tenant.slug}/telemetry", headers=other_tenant.auth())
    own = client.get(f"/v1/teams/{other_tenant.slug}/telemetry", headers=other_tenant.auth())
    assert theirs.status_code == 404
    assert own.json()["total"]["completions"] == 0


def test_a_window_out_of_range_is_refused(client: TestClient, tenant: Tenant) -> None:
    resp = client.get(f"/v1/teams/{tenant.slug}/telemetry?days=0", headers=tenant.auth())
    assert resp.status_code == 422


def test_a_team_admin_opts_in_to_keeping_code(client: TestClient, tenant: Tenant) -> None:
    url = f"/v1/teams/{tenant.slug}"
    assert client.get(url, headers=tenant.auth()).json()["telemetry_keeps_code"] is False
    resp = client.patch(url, json={"telemetry_keeps_code": True}, headers=tenant.auth())
    assert resp.status_code == 200 and resp.json()["telemetry_keeps_code"] is True
