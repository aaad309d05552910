"""Publishing, promoting and rolling back adapter versions."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from click.testing import Result
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tailor.cli.main import app as cli_app
from tailor.config import Settings
from tailor.db.models import AuditEvent
from tests.conftest import SERVED_BASE, Tenant, create_version, evaluation_report, register_base


def publish(client: TestClient, tenant: Tenant, **body: object) -> dict[str, object]:
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints",
        json={"name": "completion", "adapter": "completion", **body},
        headers=tenant.auth(),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_publishing_serves_the_latest_version(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    create_version(session, tenant.team, version=1)
    create_version(session, tenant.team, version=2)
    assert publish(client, tenant)["version"] == 2


def test_promote_then_rollback(client: TestClient, tenant: Tenant, session: Session) -> None:
    create_version(session, tenant.team, version=1)
    publish(client, tenant, version=1)
    create_version(session, tenant.team, version=2)
    base = f"/v1/teams/{tenant.slug}/endpoints/completion"
    promoted = client.post(f"{base}/promote", json={"version": 2}, headers=tenant.auth()).json()
    assert (promoted["version"], promoted["previous_version"]) == (2, 1)
    rolled = client.post(f"{base}/rollback", headers=tenant.auth()).json()
    assert (rolled["version"], rolled["previous_version"]) == (1, 2)


def test_promotion_is_audited(client: TestClient, tenant: Tenant, session: Session) -> None:
    create_version(session, tenant.team, version=1)
    publish(client, tenant)
    create_version(session, tenant.team, version=2)
    client.post(
        f"/v1/teams/{tenant.slug}/endpoints/completion/promote",
        json={"version": 2},
        headers=tenant.auth(),
    )
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.team_id == tenant.team.id)
    ).all()
    assert "endpoint.promote" in actions


def test_a_version_in_use_cannot_be_deleted(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    create_version(session, tenant.team, version=1)
    publish(client, tenant)
    resp = client.delete(
        f"/v1/teams/{tenant.slug}/adapters/completion/versions/1", headers=tenant.auth()
    )
    assert resp.status_code == 409 and "completion" in resp.json()["detail"]
    versions = client.get(
        f"/v1/teams/{tenant.slug}/adapters/completion/versions", headers=tenant.auth()
    ).json()
    assert [v["version"] for v in versions] == [1]


def test_the_publish_gate_refuses_an_unevaluated_version(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    create_version(session, tenant.team, version=1, evaluated=False)
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints",
        json={"name": "completion", "adapter": "completion"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 409 and "evaluat" in resp.json()["detail"]


def test_a_team_without_a_policy_has_the_default_gate(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    worse = evaluation_report(eval_loss=(6.64, 6.86), edit_similarity=(0.035, 0.006, -0.05))
    create_version(session, tenant.team, version=1, evaluation=worse)
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints",
        json={"name": "completion", "adapter": "completion"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 409
    assert [r.split(":")[0] for r in resp.json()["reasons"]] == [
        "held-out eval loss FAILED",
        "FIM edit similarity FAILED",
        "HumanEval was not run",
    ]
    listed = client.get(f"/v1/teams/{tenant.slug}/endpoints", headers=tenant.auth()).json()
    assert listed == []


def test_the_default_policy_is_shown_until_the_team_sets_its_own(
    client: TestClient, tenant: Tenant
) -> None:
    url = f"/v1/teams/{tenant.slug}/publish-policy"
    shown = client.get(url, headers=tenant.auth()).json()
    assert (shown["max_eval_loss_increase"], shown["min_edit_similarity_ci_low_points"]) == (
        0.0,
        -2.0,
    )
    client.put(url, json={"min_edit_similarity_ci_low_points": 1.0}, headers=tenant.auth())
    assert client.get(url, headers=tenant.auth()).json()["min_edit_similarity_ci_low_points"] == 1.0


def test_a_stricter_team_policy_refuses_what_the_default_passes(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    url = f"/v1/teams/{tenant.slug}/publish-policy"
    client.put(url, json={"min_edit_similarity_ci_low_points": 10.0}, headers=tenant.auth())
    create_version(session, tenant.team, version=1)  # CI lower end +5 points
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints",
        json={"name": "completion", "adapter": "completion"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 409 and "needs ≥ +10.0" in resp.json()["detail"]


def test_the_cli_shows_and_tightens_the_gate_which_then_refuses(
    live_url: str, tenant: Tenant, session: Session
) -> None:
    env = {"TAILOR_URL": live_url, "TAILOR_TOKEN": tenant.owner_token, "COLUMNS": "200"}

    def tailor(*args: str) -> Result:
        return CliRunner().invoke(cli_app, list(args), env=env)

    shown = json.loads(tailor("team", "policy", tenant.slug, "-o", "json").output)
    assert shown["min_edit_similarity_ci_low_points"] == -2.0
    result = tailor(
        "team", "set-policy", tenant.slug, "--min-edit-similarity-ci-low", "10", "-o", "json"
    )
    assert result.exit_code == 0, result.output
    stored = json.loads(result.output)
    assert (stored["min_edit_similarity_ci_low_points"], stored["max_eval_loss_increase"]) == (
        10.0,
        0.0,
    )
    create_version(session, tenant.team, version=1)  # CI lower end +5 points
    refused = tailor("endpoint", "publish", tenant.slug, "completion")
    assert refused.exit_code == 1 and "needs ≥ +10.0" in refused.output
    bad = tailor("team", "set-policy", tenant.slug, "--max-humaneval-drop", "-3")
    assert bad.exit_code == 1 and "max_humaneval_pass1_drop_points" in bad.output
    assert json.loads(tailor("team", "policy", tenant.slug, "-o", "json").output) == stored


def test_overriding_the_gate_is_audited(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    create_version(session, tenant.team, version=1, evaluated=False)
    assert publish(client, tenant, override_gate=True)["gate_overridden"] is True
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "endpoint.publish")).one()
    assert event.detail["override_gate"] is True


def test_another_teams_adapter_cannot_be_published(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, session: Session
) -> None:
    create_version(session, other_tenant.team, version=1)
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints",
        json={"name": "completion", "adapter": "completion"},
        headers=tenant.auth(),
    )
    assert resp.status_code == 404


def test_publishing_a_version_on_another_base_than_the_pool_serves_is_refused(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    create_version(session, tenant.team, version=1, base="starcoder2-3b")
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints",
        json={"name": "completion", "adapter": "completion"},
        headers=tenant.auth(),
    )
    problem = resp.json()
    assert resp.status_code == 409 and problem["type"].endswith("/base-model-mismatch")
    assert "'starcoder2-3b'" in problem["detail"] and "'tiny-starcoder'" in problem["detail"]
    listed = client.get(f"/v1/teams/{tenant.slug}/endpoints", headers=tenant.auth()).json()
    assert listed == []


def test_promoting_onto_a_pool_that_now_serves_another_base_is_refused(
    app: FastAPI, client: TestClient, tenant: Tenant, session: Session, settings: Settings
) -> None:
    create_version(session, tenant.team, version=1)
    publish(client, tenant, version=1)
    create_version(session, tenant.team, version=2)
    # The admin pointed the gateway at another base since the endpoint was published.
    app.state.settings = settings.model_copy(update={"serve_base_model": "starcoder2-3b"})
    resp = client.post(
        f"/v1/teams/{tenant.slug}/endpoints/completion/promote",
        json={"version": 2},
        headers=tenant.auth(),
    )
    assert resp.status_code == 409 and "'starcoder2-3b'" in resp.json()["detail"]
    endpoint = client.get(f"/v1/teams/{tenant.slug}/endpoints/completion", headers=tenant.auth())
    assert endpoint.json()["version"] == 1


def test_ide_settings_carry_the_models_fim_tokens_and_context_window(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, session: Session, tmp_path: Path
) -> None:
    # The base's own files, as the catalog's directory source has them: its tokenizer's
    # special tokens are Qwen2.5-Coder's, whatever its catalog name suggests.
    (tmp_path / "config.json").write_text(
        '{"model_type": "qwen2", "max_position_embeddings": 8192}'
    )
    specials = [
        "<|fim_prefix|>",
        "<|fim_middle|>",
        "<|fim_suffix|>",
        "<|repo_name|>",
        "<|file_sep|>",
    ]
    added = [{"id": 100 + i, "content": t, "special": True} for i, t in enumerate(specials)]
    (tmp_path / "tokenizer.json").write_text(json.dumps({"added_tokens": added}))
    register_base(session, SERVED_BASE, tmp_path)
    create_version(session, tenant.team, version=1)
    publish(client, tenant)
    resp = client.get(f"/v1/teams/{tenant.slug}/endpoints/completion/ide", headers=tenant.auth())
    assert resp.status_code == 200, resp.text
    ide = resp.json()
    vscode = ide["clients"]["llm-vscode"]["settings"]
    assert (vscode["llm.fillInTheMiddle.prefix"], vscode["llm.contextWindow"]) == (
        "<|fim_prefix|>",
        8192,
    )
    assert ide["model"]["fim"]["family"] == "qwen2.5-coder"
    assert ide["model"]["id"] == "completion-tiny-starcoder"
    assert set(ide["clients"]) == {"llm-vscode", "continue", "tabby", "llm.nvim", "openai"}
    other = client.get(
        f"/v1/teams/{tenant.slug}/endpoints/completion/ide", headers=other_tenant.auth()
    )
    assert other.status_code == 404


def test_the_cli_prints_one_clients_file_to_paste(
    live_url: str, client: TestClient, tenant: Tenant, session: Session
) -> None:
    create_version(session, tenant.team, version=1)
    publish(client, tenant)
    env = {"TAILOR_URL": live_url, "TAILOR_TOKEN": tenant.owner_token}
    result = CliRunner().invoke(
        cli_app, ["endpoint", "ide", tenant.slug, "completion", "--client", "tabby"], env=env
    )
    assert result.exit_code == 0, result.output
    config = tomllib.loads(result.stdout)
    assert config["server"]["endpoint"].endswith("/tabby/completion")
    assert "~/.tabby-client/agent/config.toml" in result.stderr


def test_an_endpoints_repository_context_is_on_by_default_and_settable(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    create_version(session, tenant.team, version=1)
    published = publish(client, tenant)
    assert (published["context_enabled"], published["context_tokens"]) == (True, 256)
    url = f"/v1/teams/{tenant.slug}/endpoints/completion/context"

    resp = client.put(url, json={"enabled": False, "tokens": 512}, headers=tenant.auth())

    assert resp.status_code == 200, resp.text
    shown = client.get(f"/v1/teams/{tenant.slug}/endpoints/completion", headers=tenant.auth())
    assert (shown.json()["context_enabled"], shown.json()["context_tokens"]) == (False, 512)
    audited = session.scalars(select(AuditEvent.action)).all()
    assert "endpoint.context" in audited


def publish_context_tokens(client: TestClient, tenant: Tenant) -> object:
    url = f"/v1/teams/{tenant.slug}/endpoints/completion"
    return client.get(url, headers=tenant.auth()).json()["context_tokens"]


def test_a_context_budget_out_of_range_is_refused_and_changes_nothing(
    client: TestClient, tenant: Tenant, session: Session
) -> None:
    create_version(session, tenant.team, version=1)
    publish(client, tenant)
    url = f"/v1/teams/{tenant.slug}/endpoints/completion/context"

    resp = client.put(url, json={"enabled": False, "tokens": 1}, headers=tenant.auth())

    assert resp.status_code == 422
    assert publish_context_tokens(client, tenant) == 256


def test_another_teams_endpoint_context_is_404(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, session: Session
) -> None:
    create_version(session, other_tenant.team, version=1)
    publish(client, other_tenant)
    url = f"/v1/teams/{other_tenant.slug}/endpoints/completion/context"

    resp = client.put(url, json={"enabled": False}, headers=tenant.auth())

    assert resp.status_code == 404
    assert publish_context_tokens(client, other_tenant) == 256
