"""Costs through the API and the CLI: prices set by platform admins, a team's spend, its
budget's soft warning and hard refusal (402, nothing created), the estimate before spending,
a job's cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tailor.cli.main import app as cli_app
from tailor.db.base import utcnow
from tailor.db.models import Dataset, Job, JobState, Team
from tailor.services.costs.estimate import MFU
from tests.conftest import Tenant, create_ready_dataset, register_base

A100 = "nvidia-a100-80gb"
BASE = "starcoderbase-1b"  # named with its size: the FLOPs model reads 1B parameters


def finished_job(session: Session, team: Team, gpu_seconds: float, kind: str = "finetune") -> str:
    """A job of this month that ran on A100s for `gpu_seconds`; committed."""
    job = Job(uid=f"{kind[:2]}-{utcnow().timestamp():.6f}"[:32], team_id=team.id, kind=kind,
              spec={}, state=JobState.succeeded, finished_at=utcnow(),
              usage={"gpu_type": A100, "gpus": 1, "gpu_seconds": gpu_seconds,
                     "cpu_seconds": 10.0, "wall_seconds": gpu_seconds})  # fmt: skip
    session.add(job)
    session.commit()
    return job.uid


def ready(session: Session, tenant: Tenant, tokens: int = 200_000) -> dict[str, object]:
    """A harvested dataset of `tokens` and a fine-tune request on it."""
    register_base(session, BASE, f"bigcode/{BASE}")
    create_ready_dataset(session, tenant.team)
    dataset = session.scalars(select(Dataset).where(Dataset.team_id == tenant.team.id)).one()
    dataset.stats = {"files_kept": 10, "tokens_estimate": tokens}
    session.commit()
    return {"base_model": BASE, "team": tenant.slug, "dataset_id": "ds-1",
            "adapter_name": "style", "method": "lora", "max_steps": 100, "seq_len": 512,
            "grad_accum": 2}  # fmt: skip


def set_price(client: TestClient, admin: dict[str, str], gpu_type: str, price: float) -> None:
    body = {"price_per_gpu_hour": price}
    answer = client.put(f"/v1/admin/gpu-prices/{gpu_type}", json=body, headers=admin)
    assert answer.status_code == 200, answer.text


def test_only_platform_admins_set_prices(
    client: TestClient, tenant: Tenant, admin_auth: dict[str, str]
) -> None:
    url = f"/v1/admin/gpu-prices/{A100}"
    refused = client.put(url, json={"price_per_gpu_hour": 1.0}, headers=tenant.auth())
    set_price(client, admin_auth, A100, 2.5)
    set_price(client, admin_auth, A100, 3.0)  # a new price from now on

    assert refused.status_code == 403
    listed = client.get("/v1/admin/gpu-prices", headers=tenant.auth()).json()
    assert [(p["gpu_type"], p["price_per_gpu_hour"], p["currency"]) for p in listed] == [
        (A100, 3.0, "USD")
    ]
    negative = client.put(url, json={"price_per_gpu_hour": -1}, headers=admin_auth)
    assert negative.status_code == 422


def test_a_team_sees_its_spend_by_day_and_kind_and_another_team_sees_none(
    client: TestClient, session: Session, tenant: Tenant, other_tenant: Tenant,
    admin_auth: dict[str, str],
) -> None:  # fmt: skip
    set_price(client, admin_auth, A100, 4.0)
    finished_job(session, tenant.team, 3 * 3600.0)
    finished_job(session, tenant.team, 1800.0, kind="evaluation")

    spend = client.get(f"/v1/teams/{tenant.slug}/spend", headers=tenant.auth("viewer")).json()
    theirs = client.get(f"/v1/teams/{tenant.slug}/spend", headers=other_tenant.auth())
    platform = client.get("/v1/admin/spend", headers=admin_auth).json()

    assert (spend["total"], spend["gpu_hours"]) == (14.0, 3.5)
    assert [(k["kind"], k["cost"]) for k in spend["by_kind"]] == [
        ("evaluation", 2.0), ("finetune", 12.0),
    ]  # fmt: skip
    assert [d["cost"] for d in spend["by_day"]] == [14.0]
    assert theirs.status_code == 404
    assert [(t["team"], t["total"]) for t in platform["by_team"]] == [(tenant.slug, 14.0)]
    assert client.get("/v1/admin/spend", headers=tenant.auth()).status_code == 403


def test_the_hard_limit_refuses_new_training_with_402_and_creates_nothing(
    client: TestClient, session: Session, tenant: Tenant, admin_auth: dict[str, str]
) -> None:
    body = ready(session, tenant)
    set_price(client, admin_auth, A100, 10.0)
    finished_job(session, tenant.team, 3600.0)  # 10.00 USD spent
    budget = {"soft_limit": 5.0, "hard_limit": 10.0}
    refused_budget = client.put(f"/v1/teams/{tenant.slug}/budget", json=budget,
                                headers=tenant.auth())  # fmt: skip
    assert refused_budget.status_code == 403  # a team does not set its own limit
    set_budget = client.put(f"/v1/teams/{tenant.slug}/budget", json=budget, headers=admin_auth)
    assert set_budget.json()["state"] == "exhausted"
    jobs_before = session.scalar(select(func.count()).select_from(Job))

    answer = client.post(f"/v1/teams/{tenant.slug}/finetunes", json=body, headers=tenant.auth())

    assert answer.status_code == 402
    problem = answer.json()
    assert problem["type"].endswith("/budget-exceeded")
    assert problem["detail"].startswith(
        f"team {tenant.slug}'s monthly budget is spent: 10.00 USD of its hard limit 10.00 USD"
    )
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Job)) == jobs_before


def test_past_the_soft_limit_the_finetune_starts_with_a_warning(
    client: TestClient, session: Session, tenant: Tenant, admin_auth: dict[str, str],
    broker: object,
) -> None:  # fmt: skip
    body = ready(session, tenant)
    set_price(client, admin_auth, A100, 10.0)
    finished_job(session, tenant.team, 3600.0)
    limits = {"soft_limit": 5.0, "hard_limit": 100.0}
    client.put(f"/v1/teams/{tenant.slug}/budget", json=limits, headers=admin_auth)

    answer = client.post(f"/v1/teams/{tenant.slug}/finetunes", json=body, headers=tenant.auth())

    assert answer.status_code == 202, answer.text
    warning = answer.json()["warnings"][0]
    assert "past its budget's soft limit of 5.00 USD" in warning
    events = client.get(f"/v1/teams/{tenant.slug}/jobs/{answer.json()['id']}/events",
                        headers=tenant.auth()).json()  # fmt: skip
    assert any(e["level"] == "warning" and e["message"] == warning for e in events)


def test_the_estimate_uses_the_flops_model_for_the_gpu_it_will_run_on(
    client: TestClient, session: Session, tenant: Tenant, admin_auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # this machine lends local jobs one GPU
    body = ready(session, tenant)
    set_price(client, admin_auth, "local-gpu", 2.0)

    estimate = client.post(f"/v1/teams/{tenant.slug}/finetunes/estimate", json=body,
                           headers=tenant.auth()).json()  # fmt: skip

    tokens = 100 * 512 * 2  # max_steps x seq_len x grad_accum
    hours = 6 * 1e9 * tokens / (312e12 * MFU["lora"]) / 3600
    assert (estimate["gpu_type"], estimate["gpus"], estimate["tokens"]) == ("local-gpu", 1, tokens)
    assert estimate["basis"] == "flops-model"
    assert estimate["gpu_hours"] == pytest.approx(hours, rel=1e-4)
    assert estimate["price"] == pytest.approx(2.0 * hours, rel=1e-3)
    assert estimate["budget_refusal"] is None
    assert session.scalar(select(func.count()).select_from(Job).where(Job.kind == "finetune")) == 0


def test_a_jobs_page_shows_what_it_used_and_cost(
    client: TestClient, session: Session, tenant: Tenant, admin_auth: dict[str, str]
) -> None:
    set_price(client, admin_auth, A100, 3.0)
    uid = finished_job(session, tenant.team, 7200.0)

    job = client.get(f"/v1/teams/{tenant.slug}/jobs/{uid}", headers=tenant.auth()).json()

    assert job["usage"]["gpu_seconds"] == 7200.0
    assert job["cost"] == {
        "gpu_type": A100, "gpus": 1, "gpu_hours": 2.0, "cpu_hours": round(10 / 3600, 6),
        "price_per_gpu_hour": 3.0, "cost": 6.0, "currency": "USD", "estimate": None,
    }  # fmt: skip


def test_the_cli_sets_prices_and_budgets_shows_spend_and_estimates(
    live_url: str, session: Session, tenant: Tenant, admin_auth: dict[str, str], tmp_path: Path
) -> None:
    admin_env = {"TAILOR_URL": live_url, "COLUMNS": "200",
                 "TAILOR_TOKEN": admin_auth["Authorization"].removeprefix("Bearer ")}  # fmt: skip
    lead_env = {**admin_env, "TAILOR_TOKEN": tenant.owner_token}

    def tailor(env: dict[str, str], *args: str) -> Result:
        return CliRunner().invoke(cli_app, list(args), env=env)

    priced = tailor(admin_env, "admin", "price", "set", A100, "4", "-o", "json")
    assert priced.exit_code == 0, priced.output
    assert json.loads(priced.output)["price_per_gpu_hour"] == 4.0
    refused = tailor(lead_env, "admin", "price", "set", A100, "1")
    assert refused.exit_code == 1 and "only platform admins set GPU prices" in refused.output
    finished_job(session, tenant.team, 3600.0)
    budget = tailor(admin_env, "team", "budget", "set", tenant.slug, "--soft", "3", "--hard", "10",
                    "-o", "json")  # fmt: skip
    assert json.loads(budget.output)["state"] == "warning"
    spend = json.loads(tailor(lead_env, "team", "spend", tenant.slug, "-o", "json").output)
    assert (spend["total"], spend["budget"]["hard_limit"]) == (4.0, 10.0)
    platform = tailor(admin_env, "admin", "spend")
    assert platform.exit_code == 0 and tenant.slug in platform.output
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({k: v for k, v in ready(session, tenant).items()
                                    if k != "team"}))  # fmt: skip
    estimate = tailor(lead_env, "finetune", "estimate", tenant.slug, str(spec))
    assert estimate.exit_code == 0, estimate.output
    assert "runs on the CPU: no GPU time" in estimate.output  # this machine has no GPU
    assert "past its budget's soft limit of 3.00 USD" in estimate.output
