"""A base model is a catalog name: no request can make the platform load a path it chose.

The attack (reviewer's finding 2): team B names team A's export directory as its base model
for a fine-tune, an import or a transfer, and gets A's fine-tuned weights back in its own
export; other paths probe the worker's filesystem. Every such request is refused, with
nothing read, nothing stored and nothing queued.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db.models import Job
from tailor.storage import FileStore
from tests.api.conftest import queued_tasks
from tests.api.test_adapters import adapter_files, upload
from tests.conftest import Tenant, create_ready_dataset, create_version, watch_paths


@pytest.fixture
def victim_export(store: FileStore, other_tenant: Tenant) -> Path:
    """Team A's merged checkpoint where its export job left it on the worker's disk."""
    export = store.root / "teams" / other_tenant.slug / "exports" / "code" / "1"
    export.mkdir(parents=True)
    (export / "config.json").write_text('{"model_type": "gpt_bigcode", "n_embd": 128}')
    (export / "model.safetensors").write_bytes(b"team A's fine-tuned weights")
    return export


@pytest.fixture
def touched(monkeypatch: pytest.MonkeyPatch, victim_export: Path) -> list[str]:
    """Every path under the victim's files (or /etc) the process opens or stats."""
    return watch_paths(monkeypatch, str(victim_export.parents[2]), "/etc")


def attacks(victim: Path, other: Tenant) -> list[str]:
    """Base models team B might name to read A's weights or probe the worker."""
    return [
        str(victim),
        f"{victim}/",
        f"../../teams/{other.slug}/exports/code/1",
        f"teams/{other.slug}/exports/code/1",
        "/etc",
        "~/.cache/huggingface",
        f"s3://tailor/services/teams/{other.slug}/exports/code/1",
        "file:///etc",
        "bigcode/starcoderbase-1b",  # a real hub id, but no admin put it in the catalog
    ]


def nothing_happened(session: Session, broker: redis.Redis, store: FileStore, team: Tenant) -> None:
    assert queued_tasks(broker) == []
    started = select(Job).where(Job.team_id == team.team.id, Job.kind != "harvest")
    assert session.scalars(started).all() == []
    assert store.list(f"teams/{team.slug}/") == []


def test_a_fine_tune_on_another_teams_export_or_any_path_is_refused(
    client: TestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session: Session,
    store: FileStore,
    broker: redis.Redis,
    victim_export: Path,
    touched: list[str],
) -> None:
    create_ready_dataset(session, tenant.team)
    url = f"/v1/teams/{tenant.slug}/finetunes"
    for base in attacks(victim_export, other_tenant):
        body = {"base_model": base, "team": tenant.slug, "dataset_id": "ds-1",
                "adapter_name": "stolen", "method": "lora"}  # fmt: skip
        resp = client.post(url, json=body, headers=tenant.auth())
        assert resp.status_code == 422, (base, resp.text)
        assert "catalog" in resp.json()["detail"], base
    nothing_happened(session, broker, store, tenant)
    assert touched == []


def test_an_import_on_another_teams_export_or_any_path_is_refused(
    client: TestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session: Session,
    store: FileStore,
    broker: redis.Redis,
    victim_export: Path,
    touched: list[str],
) -> None:
    for base in attacks(victim_export, other_tenant):
        resp = upload(client, tenant, adapter_files(), base_model=base)
        assert resp.status_code == 422, (base, resp.text)
        assert resp.json()["type"].endswith("/unknown-base-model"), base
    nothing_happened(session, broker, store, tenant)
    assert touched == []


def test_a_transfer_to_another_teams_export_or_any_path_is_refused(
    client: TestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session: Session,
    store: FileStore,
    broker: redis.Redis,
    victim_export: Path,
    touched: list[str],
) -> None:
    create_version(session, tenant.team, name="code")
    url = f"/v1/teams/{tenant.slug}/adapters/code/versions/1/transfer"
    for base in attacks(victim_export, other_tenant):
        resp = client.post(url, json={"target_base": base}, headers=tenant.auth())
        assert resp.status_code == 422, (base, resp.text)
        assert "catalog" in resp.json()["detail"], base
    nothing_happened(session, broker, store, tenant)
    assert touched == []
