"""A stored credential never appears in an API response, a log line or a database column."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.db.base import Base
from tailor.db.models import Repository
from tailor.security import CredentialCipher
from tailor.services.repositories.service import read_credential
from tests.conftest import Tenant

SECRET = "ghp_VerySecretDeployToken0123456789abcdef"
METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture
def sql_logging(caplog: pytest.LogCaptureFixture) -> None:
    """Log everything, SQL with its parameters included (set before any connection opens)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")


@pytest.fixture
def registered(
    sql_logging: None, client: TestClient, tenant: Tenant, settings: Settings
) -> list[str]:
    """Register a repository with a credential and collect every response body."""
    settings.metrics_token = SecretStr(METRICS_TOKEN)
    base = f"/v1/teams/{tenant.slug}/repositories"
    bodies = [
        client.post(
            base,
            json={
                "name": "svc",
                "url": "https://git.example.com/svc.git",
                "credential_kind": "token",
                "credential": SECRET,
            },
            headers=tenant.auth(),
        ).text,
        client.get(base, headers=tenant.auth()).text,
        client.get(f"{base}/svc", headers=tenant.auth()).text,
        client.patch(f"{base}/svc", json={"branch": "dev"}, headers=tenant.auth()).text,
        # A request that fails validation must not echo the credential back either.
        client.post(
            base,
            json={
                "name": "bad name",
                "url": "https://x.example.com/r.git",
                "credential_kind": "token",
                "credential": SECRET,
            },
            headers=tenant.auth(),
        ).text,
        client.get("/openapi.json").text,
        client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text,
    ]
    return bodies


def test_no_api_response_contains_it(registered: list[str]) -> None:
    assert all(SECRET not in body for body in registered)


def test_no_log_line_contains_it(registered: list[str], caplog: pytest.LogCaptureFixture) -> None:
    records = caplog.get_records("setup")
    assert any("INSERT INTO repositories" in r.getMessage() for r in records)
    assert all(SECRET not in r.getMessage() for r in records)


def test_no_database_column_holds_it_in_plain_text(registered: list[str], session: Session) -> None:
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)).all():
            assert all(SECRET not in str(value) for value in row), table.name


def test_the_harvester_can_still_decrypt_it(
    registered: list[str], session: Session, cipher: CredentialCipher
) -> None:
    repo = session.scalars(select(Repository)).one()
    assert read_credential(repo, cipher) == SECRET
