"""A runner that crashes leaves a failed job behind, not one that looks alive forever."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tailor.db.models import Job, JobState
from tailor.jobs.recorder import failing_on_crash
from tailor.jobs.service import create_system_job
from tests.conftest import create_tenant


def test_a_crash_fails_the_job_without_quoting_the_exception(
    sessions: sessionmaker[Session], session: Session
) -> None:
    tenant = create_tenant(session)
    job = create_system_job(session, tenant.team.id, "harvest", {})
    session.commit()
    with (
        pytest.raises(RuntimeError),
        failing_on_crash(sessions, job.uid),
    ):
        raise RuntimeError("clone of https://ci:hunter2-token@git.example.com failed")
    session.expire_all()
    failed = session.get_one(Job, job.id)
    assert failed.state == JobState.failed
    assert "RuntimeError" in (failed.error or "") and "hunter2" not in (failed.error or "")
