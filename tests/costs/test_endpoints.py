"""An endpoint's GPU-hours: replicas x GPUs from its publication to its deletion, priced."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.db.base import utcnow
from tailor.db.models import EndpointUsage, GpuPrice, Role, Team
from tailor.services.costs import service as costs
from tailor.services.costs.pricing import month_of
from tailor.services.endpoints import service as endpoints
from tailor.services.endpoints.schemas import EndpointCreate
from tailor.tenancy import Principal, TeamAccess
from tests.conftest import create_tenant, create_version

A100 = "nvidia-a100-80gb"


def test_a_vllm_endpoint_on_the_cluster_is_paid_for_while_it_runs(
    session: Session, settings: Settings
) -> None:
    tenant = create_tenant(session)
    create_version(session, tenant.team)
    session.add(GpuPrice(gpu_type=A100, price_per_gpu_hour=3.0,
                         effective_from=utcnow() - timedelta(days=40)))  # fmt: skip
    principal = Principal(user_id=tenant.owner.id, email=tenant.owner.email)
    access = TeamAccess(session.get_one(Team, tenant.team.id), Role.owner, principal)
    body = EndpointCreate(name="completion", adapter="completion", backend="vllm", replicas=2,
                          override_gate=True)  # fmt: skip

    endpoints.publish(session, access, body, serves=None, gpu_type=A100)  # its own pods
    stretch = session.scalars(select(EndpointUsage)).one()
    stretch.started_at = utcnow() - timedelta(hours=2)  # published two hours ago
    endpoints.unpublish(session, access, "completion")

    assert stretch.ended_at is not None
    assert (stretch.replicas, stretch.gpus_per_replica, stretch.gpu_type) == (2, 1, A100)
    spend = costs.team_spend(session, access, settings)
    endpoint = next(k for k in spend.by_kind if k.kind == "endpoint")
    # 2 replicas x 1 GPU x its 2 hours (those of this month) at 3.00 an hour.
    hours = (stretch.ended_at - max(stretch.started_at, month_of(utcnow())[0])) / timedelta(hours=1)
    assert endpoint.gpu_hours == pytest.approx(2 * hours, abs=1e-5)
    assert endpoint.cost == pytest.approx(3.0 * 2 * hours, abs=1e-3)


def test_the_shared_in_process_pool_costs_no_gpu(session: Session, settings: Settings) -> None:
    tenant = create_tenant(session)
    create_version(session, tenant.team)
    principal = Principal(user_id=tenant.owner.id, email=tenant.owner.email)
    access = TeamAccess(session.get_one(Team, tenant.team.id), Role.owner, principal)
    body = EndpointCreate(name="completion", adapter="completion", override_gate=True)

    endpoints.publish(session, access, body, serves="tiny-starcoder", gpu_type=A100)

    stretch = session.scalars(select(EndpointUsage)).one()
    assert (stretch.gpus_per_replica, stretch.gpu_type, stretch.ended_at) == (0, None, None)
