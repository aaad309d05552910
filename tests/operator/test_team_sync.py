"""The Team sync and the periodic resync against the emulator: the database decides.

The API runs for real with the cluster executor; the test runs the worker's task functions
(`sync_team`, `resync_teams`) as the worker and Celery beat would.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from sqlalchemy import select

from tailor.db.models import AuditEvent
from tailor.k8s import connect
from tailor.services.teams.sync import UNKNOWN_TEAMS, resync_teams, sync_team
from tests.charts.validation import validate_manifest
from tests.operator.conftest import Kube, Platform, custom_resource

pytestmark = pytest.mark.asyncio
TEAMS = "/apis/tailor.dev/v1alpha1/teams"


def _admin(platform: Platform) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.admin_token}"}


async def _sync(platform: Platform, slug: str) -> str:
    return await asyncio.to_thread(sync_team, platform.sessions, slug, connect())


async def test_a_quota_change_reaches_the_team_and_an_unset_field_goes_back_to_default(
    kube: Kube, platform: Platform, kubeconfig: Any
) -> None:
    admin = _admin(platform)
    assert platform.client.post("/v1/teams", json={"slug": "ml", "name": "ML"}, headers=admin)
    assert await _sync(platform, "ml") == "created"
    quota = {"gpu_quota": 4, "cluster_quota": {"gpu_type": "nvidia-h100-80gb", "pods": 9}}
    assert platform.client.patch("/v1/teams/ml", json=quota, headers=admin).status_code == 200
    assert await _sync(platform, "ml") == "updated"
    fewer = {"cluster_quota": {"pods": 9}}
    assert platform.client.patch("/v1/teams/ml", json=fewer, headers=admin).status_code == 200

    assert await _sync(platform, "ml") == "updated"

    team = await kube.get(f"{TEAMS}/ml")
    assert team is not None
    validate_manifest(team)
    assert team["spec"] == {"displayName": "ML", "quota": {"gpus": 4, "pods": 9}}


async def test_deleting_a_team_deletes_its_team_resource_once(
    kube: Kube, platform: Platform, kubeconfig: Any
) -> None:
    admin = _admin(platform)
    assert platform.client.post("/v1/teams", json={"slug": "gone", "name": "G"}, headers=admin)
    assert await _sync(platform, "gone") == "created"
    assert platform.client.delete("/v1/teams/gone", headers=admin).status_code == 204

    assert await _sync(platform, "gone") == "deleted"
    assert await _sync(platform, "gone") == "absent"  # a repeated task changes nothing
    assert await kube.get(f"{TEAMS}/gone") is None


async def test_the_resync_restores_a_missing_team_and_reports_a_stray_one(
    kube: Kube, platform: Platform, kubeconfig: Any, caplog: pytest.LogCaptureFixture
) -> None:
    admin = _admin(platform)
    assert platform.client.post("/v1/teams", json={"slug": "lost", "name": "L"}, headers=admin)
    await kube.create(TEAMS, custom_resource("Team", "stray", {}, None))  # made by hand

    with caplog.at_level(logging.WARNING, logger="tailor.services.teams.sync"):
        result = await asyncio.to_thread(resync_teams, platform.sessions, connect())

    assert result.applied == {"lost": "created"}
    assert result.unknown == ["stray"]
    assert "stray" in caplog.text
    assert await kube.get(f"{TEAMS}/lost") is not None
    assert await kube.get(f"{TEAMS}/stray") is not None  # reported, never deleted


async def test_the_audit_log_notes_each_change_of_the_stray_teams_once(
    kube: Kube, platform: Platform, kubeconfig: Any
) -> None:
    await kube.create(TEAMS, custom_resource("Team", "stray", {}, None))
    for _ in range(2):
        await asyncio.to_thread(resync_teams, platform.sessions, connect())
    await kube.delete(f"{TEAMS}/stray")
    await asyncio.to_thread(resync_teams, platform.sessions, connect())

    with platform.sessions() as session:
        notes = session.scalars(
            select(AuditEvent.detail)
            .where(AuditEvent.action == UNKNOWN_TEAMS)
            .order_by(AuditEvent.id)
        ).all()
    assert notes == [{"teams": ["stray"]}, {"teams": []}]


async def test_an_unreachable_cluster_fails_the_task_so_it_is_retried(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = _admin(platform)
    assert platform.client.post("/v1/teams", json={"slug": "later", "name": "L"}, headers=admin)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        server = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "c", "cluster": {"server": server}}],
              "users": [{"name": "u", "user": {"token": "t"}}],
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}  # fmt: skip
    (tmp_path / "down").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "down"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    api = connect()
    api.configuration.retries = 0

    with pytest.raises(urllib3.exceptions.HTTPError):
        await asyncio.to_thread(sync_team, platform.sessions, "later", api)

    assert platform.client.get("/v1/teams/later", headers=admin).status_code == 200
