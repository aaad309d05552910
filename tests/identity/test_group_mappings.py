"""Platform admins map identity-provider groups to teams and roles (API and CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from sqlalchemy import select

from tailor.db.models import AuditEvent, GroupMapping
from tests.conftest import create_token, create_user
from tests.identity.conftest import SsoApp, headless_sign_in, make_team, roles_of


def _token(app: SsoApp, *, admin: bool) -> str:
    with app.sessions() as session:
        user = create_user(session, admin=admin)
        scopes = ("read", "write", "admin") if admin else ("read", "write")
        token = create_token(session, user, scopes=scopes)
        session.commit()
    return token


def _api(app: SsoApp, token: str) -> httpx.Client:
    return httpx.Client(base_url=app.url, headers={"Authorization": f"Bearer {token}"})


def _sign_in(app: SsoApp, login: str) -> None:
    with httpx.Client() as http:
        assert headless_sign_in(app, http, login).status_code == 303


def test_a_mapping_made_through_the_api_applies_at_the_next_sign_in_and_goes_with_it(
    sso: SsoApp,
) -> None:
    team = make_team(sso, f"api-{uuid.uuid4().hex[:6]}")
    sso.idp.person("lee", "lee@example.com", ["api-group"])
    with _api(sso, _token(sso, admin=True)) as api:
        made = api.post(
            "/v1/admin/group-mappings",
            json={"group": "api-group", "team": team.slug, "role": "admin"},
        )
        assert made.status_code == 201, made.text
        assert made.json() | {"created_at": None} == {
            "id": made.json()["id"],
            "group": "api-group",
            "team": team.slug,
            "role": "admin",
            "created_at": None,
        }
        _sign_in(sso, "lee")
        assert roles_of(sso, "lee@example.com") == {team.slug: "admin"}

        assert api.delete(f"/v1/admin/group-mappings/{made.json()['id']}").status_code == 204
        _sign_in(sso, "lee")
        assert roles_of(sso, "lee@example.com") == {}
    with sso.sessions() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.team_id == team.id).order_by(AuditEvent.id)
        ).all()
    assert actions[-4:] == [
        "group_mapping.create",
        "member.add",
        "group_mapping.delete",
        "member.remove",
    ]


def test_only_platform_admins_map_groups_and_bad_mappings_change_nothing(sso: SsoApp) -> None:
    team = make_team(sso, f"gate-{uuid.uuid4().hex[:6]}")
    body = {"group": "gate", "team": team.slug, "role": "owner"}
    with _api(sso, _token(sso, admin=False)) as someone:
        assert someone.post("/v1/admin/group-mappings", json=body).status_code == 403
        assert someone.get("/v1/admin/group-mappings").status_code == 403
    with _api(sso, _token(sso, admin=True)) as admin:
        assert (
            admin.post("/v1/admin/group-mappings", json=body | {"team": "no-such-team"}).status_code
            == 404
        )
        assert (
            admin.post("/v1/admin/group-mappings", json=body | {"group": "  "}).status_code == 422
        )
        assert (
            admin.post("/v1/admin/group-mappings", json=body | {"role": "emperor"}).status_code
            == 422
        )
        assert admin.post("/v1/admin/group-mappings", json=body).status_code == 201
        assert admin.post("/v1/admin/group-mappings", json=body).status_code == 409
    with sso.sessions() as session:
        assert (
            len(
                session.scalars(select(GroupMapping).where(GroupMapping.group_name == "gate")).all()
            )
            == 1
        )


def test_the_cli_adds_lists_and_removes_mappings(sso: SsoApp, tmp_path: Path) -> None:
    team = make_team(sso, f"cli-{uuid.uuid4().hex[:6]}")
    env = os.environ | {
        "TAILOR_URL": sso.url,
        "TAILOR_TOKEN": _token(sso, admin=True),
        "XDG_CONFIG_HOME": str(tmp_path),
    }

    def tailor(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "tailor.cli.main", "admin", "group-mappings", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    made = json.loads(tailor("add", "cli-group", team.slug, "--role", "viewer", "-o", "json"))
    assert (made["group"], made["team"], made["role"]) == ("cli-group", team.slug, "viewer")
    listed = json.loads(tailor("list", "-o", "json"))
    assert made["id"] in [m["id"] for m in listed]
    tailor("remove", str(made["id"]))
    assert made["id"] not in [m["id"] for m in json.loads(tailor("list", "-o", "json"))]
