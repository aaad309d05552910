"""Job progress: the message follows every update, the event log only each new phase."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tailor.jobs import service as jobs
from tests.conftest import create_tenant


def test_counting_within_a_phase_does_not_flood_the_event_log(session: Session) -> None:
    job = jobs.create_system_job(session, create_tenant(session).team.id, "finetune", {})
    for step in range(1, 51):
        jobs.report(session, job, step / 100, f"step {step} of 100, loss {7 - step / 10:.2f}")
    jobs.report(session, job, 0.6, "evaluating on held-out code")
    messages = [e.message for e in jobs.events(session, job)]
    assert messages == [
        "finetune job queued by the platform",
        "step 1 of 100, loss 6.90",
        "evaluating on held-out code",
    ]
    assert job.message == "evaluating on held-out code"
