"""The worker side of the served check (`served_check`): the evaluated adapter in process
against the endpoint over HTTP.

The worker calls the gateway with a short-lived inference token of the member who asked
(the gateway serves members' tokens only); the token exists for the check alone and is
deleted when it ends. Its plaintext lives in the worker's memory, never in the job.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.base import utcnow
from tailor.db.models import ApiToken, Endpoint, Job, User
from tailor.errors import Conflict, InvalidInput
from tailor.jobs import service as jobs
from tailor.jobs.recorder import JobRecorder
from tailor.jobs.runner import Stage, run_job
from tailor.services.base_models import service as catalog
from tailor.services.evaluations.run import EvaluationCancelled, stopping
from tailor.services.tokens.service import issue_token
from tailor.stages.evaluate.spec import EvalSpec
from tailor.storage import ObjectStore

TOKEN_LIFETIME = timedelta(hours=1)  # longer than a check takes; deleted when it ends anyway


class _Check(NamedTuple):
    """A served check as read at its start."""

    spec: EvalSpec  # its base resolved to the catalog's source
    endpoint: str
    token: str  # the check's own inference token (plaintext, memory only)
    token_id: int


def run_served_check_job(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    settings: Settings,
    job_uid: str,
    stop: threading.Event | None = None,
) -> None:
    """Run the served check `job_uid`: it succeeds when the endpoint agrees, else fails saying
    how it differs; either way its result is the agreement report."""
    from tailor.stages.evaluate.compare import EvaluationError
    from tailor.stages.evaluate.fim_tasks import DatasetError
    from tailor.stages.evaluate.served import ServedError

    def read(session: Session, job: Job) -> _Check:
        spec = EvalSpec.model_validate(job.spec["eval"])
        ep = get_endpoint_of(session, job)
        if ep.version_id != job.spec["version_id"]:
            raise Conflict(f"endpoint '{ep.name}' serves another version now: check it again")
        base = catalog.resolve(session, spec.base_model)
        user = session.get(User, job.created_by) if job.created_by is not None else None
        if user is None:
            raise InvalidInput("the check calls the endpoint as the member who asked for it")
        row, token = issue_token(
            session,
            user,
            name=f"served check {job.uid}",
            scopes=["inference"],
            team_id=job.team_id,
            expires_at=utcnow() + TOKEN_LIFETIME,
        )
        return _Check(spec.model_copy(update={"base_source": base.source}), ep.name, token, row.id)

    def work(c: _Check, recorder: JobRecorder) -> dict[str, Any]:
        try:
            return served_agreement(c, store, settings.serve_url, recorder)
        finally:
            with sessions.begin() as session:  # the token goes whatever happened
                if (row := session.get(ApiToken, c.token_id)) is not None:
                    session.delete(row)

    def finish(session: Session, job: Job, c: _Check, result: dict[str, Any]) -> None:
        if result["agreed"]:
            jobs.succeed(session, job, result)
        else:
            job.result = result  # what differed stays readable on the failed job
            jobs.fail(session, job, str(result["reason"]))

    expected = (EvaluationError, DatasetError, ServedError)
    stage = Stage(read, work, finish, cancelled=(EvaluationCancelled,), expected=expected)
    run_job(sessions, job_uid, stage, stop)


def get_endpoint_of(session: Session, job: Job) -> Endpoint:
    """The job's endpoint (a Conflict when it was deleted since)."""
    name = job.spec["endpoint"]
    ep = session.scalar(
        select(Endpoint).where(Endpoint.team_id == job.team_id, Endpoint.name == name)
    )
    if ep is None:
        raise Conflict(f"endpoint '{job.spec['endpoint']}' was deleted before it was checked")
    return ep


def served_agreement(
    c: _Check, store: ObjectStore, gateway_url: str, recorder: JobRecorder
) -> dict[str, Any]:
    """Load the evaluated adapter in process and compare it with the endpoint over HTTP."""
    from tailor.stages.evaluate.compare import Candidate
    from tailor.stages.evaluate.served import HttpCompletions, check_served
    from tailor.stages.serve.engine import TailorEngine

    engine = TailorEngine(c.spec.base_location(), store).start()
    try:
        engine.wait_ready()
        report = check_served(
            c.spec,
            store,
            evaluated=Candidate(engine, c.spec.adapter),
            # The evaluated run had no repository context: the served one must not either,
            # or every completion differs for a reason the check is not about.
            served=Candidate(
                HttpCompletions(gateway_url, c.token, c.endpoint, repository_context=False)
            ),
            endpoint=c.endpoint,
            progress=stopping(recorder),
        )
    finally:
        engine.close()
    return report.model_dump(mode="json")
