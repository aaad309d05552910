"""Teams at the API's edge in cluster mode: each change queues the Team sync after the commit;
deleting a team that still holds work needs its slug again; the chart's seeding is idempotent.

What the sync does on the cluster is tested with the operator in tests/operator.
"""

from __future__ import annotations

import json
from pathlib import Path

import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from tailor.cli.main import app as cli_app
from tailor.config import Settings
from tailor.services.teams.sync import SYNC_TASK
from tests.api.conftest import queued_tasks
from tests.conftest import Tenant, create_ready_dataset, create_version


def _on_the_cluster(app: FastAPI, settings: Settings) -> None:
    app.state.settings = settings.model_copy(update={"executor": "kubernetes"})


def _syncs(broker: redis.Redis) -> list[list[object]]:
    return [args for name, args in queued_tasks(broker) if name == SYNC_TASK]


def test_creating_changing_and_deleting_a_team_each_queue_its_sync(
    app: FastAPI,
    client: TestClient,
    broker: redis.Redis,
    settings: Settings,
    tenant: Tenant,
    admin_auth: dict[str, str],
) -> None:
    _on_the_cluster(app, settings)

    assert client.post("/v1/teams", json={"slug": "ml", "name": "ML"}, headers=tenant.auth())
    quota = {"gpu_quota": 4, "cluster_quota": {"gpu_type": "nvidia-h100-80gb", "cpu": "32"}}
    assert client.patch("/v1/teams/ml", json=quota, headers=admin_auth).status_code == 200
    assert client.delete("/v1/teams/ml", headers=tenant.auth()).status_code == 204

    assert _syncs(broker) == [["ml"]] * 3


def test_a_refused_team_change_queues_nothing(
    app: FastAPI, client: TestClient, broker: redis.Redis, settings: Settings, tenant: Tenant
) -> None:
    _on_the_cluster(app, settings)

    taken = client.post("/v1/teams", json={"slug": tenant.slug, "name": "x"}, headers=tenant.auth())
    quota = client.patch(f"/v1/teams/{tenant.slug}", json={"gpu_quota": 2}, headers=tenant.auth())

    assert (taken.status_code, quota.status_code) == (409, 403)
    assert _syncs(broker) == []


def test_only_platform_admins_change_the_cluster_quota(
    client: TestClient, tenant: Tenant, admin_auth: dict[str, str]
) -> None:
    body = {"cluster_quota": {"memory": "64Gi"}}
    refused = client.patch(f"/v1/teams/{tenant.slug}", json=body, headers=tenant.auth())
    allowed = client.patch(f"/v1/teams/{tenant.slug}", json=body, headers=admin_auth)

    assert refused.status_code == 403
    assert allowed.json()["cluster_quota"]["memory"] == "64Gi"


def test_a_bad_cluster_quota_is_explained_and_changes_nothing(
    client: TestClient, tenant: Tenant, admin_auth: dict[str, str]
) -> None:
    body = {"cluster_quota": {"memory": "-8Gi"}}
    resp = client.patch(f"/v1/teams/{tenant.slug}", json=body, headers=admin_auth)

    assert resp.status_code == 422 and "memory" in resp.json()["detail"]
    shown = client.get(f"/v1/teams/{tenant.slug}", headers=admin_auth).json()
    assert shown["cluster_quota"]["memory"] is None


def test_deleting_a_team_with_datasets_adapters_or_endpoints_needs_its_slug_again(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    create_ready_dataset(session, tenant.team)
    create_version(session, tenant.team, version=1)
    session.commit()

    refused = client.delete(f"/v1/teams/{tenant.slug}", headers=tenant.auth())
    wrong = client.delete(f"/v1/teams/{tenant.slug}?confirm=other", headers=tenant.auth())

    assert (refused.status_code, wrong.status_code) == (409, 409)
    assert refused.json()["holdings"] == {"datasets": 1, "adapters": 1}
    assert client.get(f"/v1/teams/{tenant.slug}", headers=tenant.auth()).status_code == 200
    confirm = f"/v1/teams/{tenant.slug}?confirm={tenant.slug}"
    confirmed = client.delete(confirm, headers=tenant.auth())
    assert confirmed.status_code == 204


def test_seeding_a_team_twice_creates_it_once_and_applies_the_second_quota(
    client: TestClient, admin_auth: dict[str, str]
) -> None:
    first = {"name": "Search", "gpu_quota": 16, "cluster_quota": {"gpu_borrowing_limit": 8}}
    second = {"name": "Search", "gpu_quota": 8, "cluster_quota": {"cpu": "96"}}

    assert client.put("/v1/internal/teams/search", json=first, headers=admin_auth).is_success
    resp = client.put("/v1/internal/teams/search", json=second, headers=admin_auth)

    assert resp.status_code == 200
    team = client.get("/v1/teams/search", headers=admin_auth).json()
    assert (team["gpu_quota"], team["cluster_quota"]["cpu"]) == (8, "96")
    assert team["cluster_quota"]["gpu_borrowing_limit"] is None
    listed = client.get("/v1/teams", headers=admin_auth).json()["items"]
    assert [t["slug"] for t in listed].count("search") == 1


def test_a_team_member_cannot_seed_teams(client: TestClient, tenant: Tenant) -> None:
    resp = client.put(
        f"/v1/internal/teams/{tenant.slug}", json={"name": "mine", "gpu_quota": 64},
        headers=tenant.auth(),
    )  # fmt: skip

    assert resp.status_code == 403
    shown = client.get(f"/v1/teams/{tenant.slug}", headers=tenant.auth()).json()
    assert shown["gpu_quota"] == 0


def _seed(url: str, token: str, path: Path) -> Result:
    env = {"TAILOR_URL": url, "TAILOR_TOKEN": token, "TAILOR_OPERATOR_TOKEN": "", "COLUMNS": "200"}
    return CliRunner().invoke(cli_app, ["admin", "seed-teams", str(path)], env=env)


def test_seed_teams_creates_the_files_teams_through_the_api(
    live_url: str, admin_auth: dict[str, str], tmp_path: Path, client: TestClient
) -> None:
    teams = [{"name": "search", "displayName": "Search", "quota": {"gpus": 16, "cpu": 192}}]
    (tmp_path / "teams.json").write_text(json.dumps(teams))
    admin = admin_auth["Authorization"].removeprefix("Bearer ")

    for _ in range(2):
        done = _seed(live_url, admin, tmp_path / "teams.json")
        assert done.exit_code == 0, done.output

    team = client.get("/v1/teams/search", headers=admin_auth).json()
    assert (team["name"], team["gpu_quota"], team["cluster_quota"]["cpu"]) == ("Search", 16, "192")


def test_seed_teams_with_one_bad_team_sends_none(
    live_url: str, admin_auth: dict[str, str], tmp_path: Path, client: TestClient
) -> None:
    teams = [{"name": "good", "quota": {"gpus": 1}}, {"name": "bad", "quota": {"cpu": "lots"}}]
    (tmp_path / "teams.json").write_text(json.dumps(teams))

    admin = admin_auth["Authorization"].removeprefix("Bearer ")
    done = _seed(live_url, admin, tmp_path / "teams.json")

    assert done.exit_code != 0 and "cpu" in done.output
    assert client.get("/v1/teams/good", headers=admin_auth).status_code == 404
