"""The base-model catalog: platform admins manage it, everyone names its bases, nobody paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from tailor.cli.main import app as cli_app
from tailor.db.models import AuditEvent, Job
from tests.conftest import Tenant, create_version

ADMIN = "/v1/admin/base-models"
STARCODER = {"name": "starcoderbase-1b", "source": "bigcode/starcoderbase-1b", "revision": "main"}


def test_an_admin_registers_a_base_and_every_user_sees_its_name_only(
    client: TestClient, admin_auth: dict[str, str], tenant: Tenant
) -> None:
    created = client.post(ADMIN, json=STARCODER, headers=admin_auth)
    assert created.status_code == 201, created.text
    assert created.json()["source"] == "bigcode/starcoderbase-1b"

    listed = client.get("/v1/base-models", headers=tenant.auth("viewer"))
    assert listed.status_code == 200
    assert listed.json() == [{"name": "starcoderbase-1b", "family": "", "description": ""}]


def test_a_directory_source_gets_its_family_from_its_config(
    client: TestClient, admin_auth: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "gpt_bigcode"}')
    body = {"name": "tiny", "source": str(tmp_path)}
    assert client.post(ADMIN, json=body, headers=admin_auth).json()["family"] == "gpt_bigcode"


def test_only_a_platform_admin_changes_the_catalog(
    client: TestClient, tenant: Tenant, admin_auth: dict[str, str], session: Session
) -> None:
    assert client.post(ADMIN, json=STARCODER, headers=tenant.auth()).status_code == 403
    assert client.get(ADMIN, headers=tenant.auth()).status_code == 403
    client.post(ADMIN, json=STARCODER, headers=admin_auth)
    resp = client.delete(f"{ADMIN}/starcoderbase-1b", headers=tenant.auth())
    assert resp.status_code == 403
    assert [b["name"] for b in client.get(ADMIN, headers=admin_auth).json()] == ["starcoderbase-1b"]


@pytest.mark.parametrize(
    "source",
    ["../teams/a/exports", "models/../../etc", "./tiny", "~/models", "file:///models/x",
     "s3://bucket/../other", "/models/../etc", "a/b/c"],
)  # fmt: skip
def test_a_source_that_is_no_hub_id_s3_prefix_or_absolute_directory_is_refused(
    client: TestClient, admin_auth: dict[str, str], source: str
) -> None:
    resp = client.post(ADMIN, json={"name": "x", "source": source}, headers=admin_auth)
    assert resp.status_code == 422, resp.text
    assert client.get(ADMIN, headers=admin_auth).json() == []


def test_a_name_is_registered_once(client: TestClient, admin_auth: dict[str, str]) -> None:
    client.post(ADMIN, json=STARCODER, headers=admin_auth)
    again = client.post(ADMIN, json=STARCODER | {"source": "other/model"}, headers=admin_auth)
    assert again.status_code == 409
    assert client.get(ADMIN, headers=admin_auth).json()[0]["source"] == "bigcode/starcoderbase-1b"


def test_a_base_adapters_are_on_cannot_be_removed(
    client: TestClient, admin_auth: dict[str, str], tenant: Tenant, session: Session
) -> None:
    create_version(session, tenant.team, base="tiny-starcoder")
    resp = client.delete(f"{ADMIN}/tiny-starcoder", headers=admin_auth)
    assert resp.status_code == 409 and "1 adapter(s)" in resp.json()["detail"]
    assert [b["name"] for b in client.get(ADMIN, headers=admin_auth).json()] == ["tiny-starcoder"]


def test_removing_an_unused_base_is_audited(
    client: TestClient, admin_auth: dict[str, str], session: Session
) -> None:
    client.post(ADMIN, json=STARCODER, headers=admin_auth)
    assert client.delete(f"{ADMIN}/starcoderbase-1b", headers=admin_auth).status_code == 204
    assert client.get(ADMIN, headers=admin_auth).json() == []
    actions = session.scalars(select(AuditEvent.action).where(AuditEvent.team_id.is_(None)))
    assert {"base-model.add", "base-model.remove"} <= set(actions)


def test_a_fine_tune_of_a_base_outside_the_catalog_says_how_to_list_it(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    body = {"base_model": "starcoder2-15b", "team": tenant.slug, "dataset_id": "ds-1",
            "adapter_name": "style"}  # fmt: skip
    resp = client.post(f"/v1/teams/{tenant.slug}/finetunes", json=body, headers=tenant.auth())
    problem = resp.json()
    assert resp.status_code == 422 and problem["type"].endswith("/unknown-base-model")
    assert "catalog" in problem["detail"] and "GET /v1/base-models" in problem["detail"]
    assert session.scalars(select(Job)).all() == []


def cli(url: str, token: str, *args: str) -> Result:
    env = {"TAILOR_URL": url, "TAILOR_TOKEN": token, "COLUMNS": "200"}
    return CliRunner().invoke(cli_app, list(args), env=env)


def test_an_admin_manages_the_catalog_and_a_team_lists_its_names(
    live_url: str, admin_auth: dict[str, str], tenant: Tenant
) -> None:
    admin = admin_auth["Authorization"].removeprefix("Bearer ")
    added = cli(live_url, admin, "admin", "base-model", "add", "starcoderbase-1b",
                "bigcode/starcoderbase-1b", "--family", "gpt_bigcode", "-o", "json")  # fmt: skip
    assert added.exit_code == 0, added.output
    catalog = json.loads(cli(live_url, admin, "admin", "base-model", "list", "-o", "json").output)
    assert [(b["name"], b["source"]) for b in catalog] == [
        ("starcoderbase-1b", "bigcode/starcoderbase-1b")
    ]
    names = json.loads(cli(live_url, tenant.owner_token, "base", "list", "-o", "json").output)
    assert names == [{"name": "starcoderbase-1b", "family": "gpt_bigcode", "description": ""}]

    refused = cli(live_url, tenant.owner_token, "admin", "base-model", "remove", "starcoderbase-1b")
    assert refused.exit_code == 1 and "403" in refused.output
    removed = cli(live_url, admin, "admin", "base-model", "remove", "starcoderbase-1b")
    assert removed.exit_code == 0, removed.output
