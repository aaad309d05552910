"""Repositories through the API."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from tailor.config import Settings
from tailor.queue import CONTEXT_TASK
from tests.api.conftest import queued_tasks
from tests.conftest import Tenant
from tests.repositories.spellings import LOOPBACK, METADATA, OTHER_FORBIDDEN


def register(client: TestClient, tenant: Tenant, **body: object) -> dict[str, object]:
    resp = client.post(
        f"/v1/teams/{tenant.slug}/repositories",
        json={"name": "api", "url": "https://git.example.com/api.git", **body},
        headers=tenant.auth(),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_a_registered_repository_is_listed(client: TestClient, tenant: Tenant) -> None:
    register(client, tenant, branch="develop", include=["src/**"])
    items = client.get(f"/v1/teams/{tenant.slug}/repositories", headers=tenant.auth()).json()
    assert [(r["name"], r["branch"], r["include"]) for r in items["items"]] == [
        ("api", "develop", ["src/**"])
    ]


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ext::sh -c touch% /tmp/pwned",
        "/srv/git/repo.git",
        "../repo",
        "https://user:hunter2@git.example.com/r.git",
        "ftp://git.example.com/r.git",
        "https://169.254.169.254/latest",
        "~/repo",
    ],
)
def test_unsafe_urls_are_refused(url: str, client: TestClient, tenant: Tenant) -> None:
    resp = client.post(
        f"/v1/teams/{tenant.slug}/repositories",
        json={"name": "x", "url": url},
        headers=tenant.auth(),
    )
    assert resp.status_code == 422
    assert "hunter2" not in resp.text
    listed = client.get(f"/v1/teams/{tenant.slug}/repositories", headers=tenant.auth()).json()
    assert listed["items"] == []


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/org/repo.git",
        "ssh://git@git.example.com/org/repo.git",
        "git@github.com:org/repo.git",
    ],
)
def test_remote_git_urls_are_accepted(url: str, client: TestClient, tenant: Tenant) -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"
    kind = {} if url.startswith("https") else {"credential_kind": "ssh_key", "credential": key}
    assert register(client, tenant, url=url, **kind)["url"] == url


def test_a_duplicate_name_is_a_conflict_and_keeps_the_first(
    client: TestClient, tenant: Tenant
) -> None:
    register(client, tenant)
    resp = client.post(
        f"/v1/teams/{tenant.slug}/repositories",
        json={"name": "api", "url": "https://elsewhere.example.com/x.git"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 409
    kept = client.get(f"/v1/teams/{tenant.slug}/repositories/api", headers=tenant.auth()).json()
    assert kept["url"] == "https://git.example.com/api.git"


def test_rotating_a_credential_keeps_it_write_only(client: TestClient, tenant: Tenant) -> None:
    register(client, tenant)
    resp = client.patch(
        f"/v1/teams/{tenant.slug}/repositories/api",
        json={"credential_kind": "token", "credential": "glpat-rotated-value"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 200
    assert resp.json()["has_credential"] is True
    assert "glpat-rotated-value" not in resp.text


def test_a_token_credential_on_an_ssh_url_is_refused(client: TestClient, tenant: Tenant) -> None:
    resp = client.post(
        f"/v1/teams/{tenant.slug}/repositories",
        json={
            "name": "x",
            "url": "git@github.com:o/r.git",
            "credential_kind": "token",
            "credential": "abc",
        },
        headers=tenant.auth(),
    )
    assert resp.status_code == 422
    assert "ssh_key" in resp.json()["detail"]


def test_deleting_a_repository_forgets_it(client: TestClient, tenant: Tenant) -> None:
    register(client, tenant)
    assert (
        client.delete(
            f"/v1/teams/{tenant.slug}/repositories/api", headers=tenant.auth()
        ).status_code
        == 204
    )
    assert (
        client.get(f"/v1/teams/{tenant.slug}/repositories/api", headers=tenant.auth()).status_code
        == 404
    )


@pytest.mark.parametrize("host", METADATA + LOOPBACK + OTHER_FORBIDDEN)
def test_every_spelling_of_a_forbidden_host_is_refused_and_nothing_is_stored(
    host: str, client: TestClient, tenant: Tenant
) -> None:
    resp = client.post(
        f"/v1/teams/{tenant.slug}/repositories",
        json={"name": "x", "url": f"https://{host}/org/repo.git"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["type"].endswith("/invalid-input")
    listed = client.get(f"/v1/teams/{tenant.slug}/repositories", headers=tenant.auth()).json()
    assert listed["items"] == []


def test_a_url_cannot_be_changed_to_a_forbidden_host(client: TestClient, tenant: Tenant) -> None:
    register(client, tenant)
    resp = client.patch(
        f"/v1/teams/{tenant.slug}/repositories/api",
        json={"url": "https://[::ffff:169.254.169.254]/latest.git"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 422
    kept = client.get(f"/v1/teams/{tenant.slug}/repositories/api", headers=tenant.auth()).json()
    assert kept["url"] == "https://git.example.com/api.git"


def test_loopback_is_accepted_where_the_settings_allow_the_demo_server(
    client: TestClient, tenant: Tenant, settings: Settings
) -> None:
    settings.git_allow_loopback = True
    assert register(client, tenant, url="http://127.0.0.1:8080/demo.git")["url"] == (
        "http://127.0.0.1:8080/demo.git"
    )


def test_deleting_a_repository_queues_the_rebuild_of_the_teams_code_index(
    client: TestClient, tenant: Tenant, broker: redis.Redis
) -> None:
    register(client, tenant)

    client.delete(f"/v1/teams/{tenant.slug}/repositories/api", headers=tenant.auth())

    assert queued_tasks(broker) == [(CONTEXT_TASK, [tenant.team.id])]
