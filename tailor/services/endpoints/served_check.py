"""The served check: a job after publish that sends the version's evaluation tasks to the
endpoint over HTTP, as an IDE does, and fails unless the answers agree with the evaluated
adapter's (`tailor.stages.evaluate.served`). Queuing it; the worker side is `served_check_run`.
"""

from __future__ import annotations

from celery import Celery
from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.db.models import AdapterVersion
from tailor.errors import InvalidInput
from tailor.jobs import service as jobs
from tailor.jobs.schemas import JobOut
from tailor.queue import TASKS, send_after_commit
from tailor.services.endpoints.service import get_endpoint
from tailor.stages.evaluate.spec import EvalReport, EvalSpec, FimSpec
from tailor.tenancy import TeamAccess

KIND = "served-check"


def queue_served_check(
    session: Session, access: TeamAccess, endpoint: str, sender: Celery, settings: Settings
) -> JobOut:
    """Queue the served check of one of the team's endpoints (404 for another team's)."""
    ep = get_endpoint(session, access, endpoint)
    version = session.get_one(AdapterVersion, ep.version_id)
    spec = _check_spec(version, access.team.slug, settings.served_check_fim_tasks)
    payload = {"eval": spec.model_dump(mode="json"), "endpoint": ep.name, "version_id": version.id}
    job = jobs.create_job(session, access, KIND, payload)
    send_after_commit(session, sender, TASKS[KIND], job.uid)
    return JobOut.of(job)


def check_after_publish(
    session: Session, access: TeamAccess, endpoint: str, sender: Celery, settings: Settings
) -> JobOut | None:
    """The served check of an endpoint just published, where its version has held-out code
    to check with (an evaluation, or a dataset); None where it has none."""
    version = session.get_one(AdapterVersion, get_endpoint(session, access, endpoint).version_id)
    if not (version.evaluation or version.dataset_uid):
        return None
    return queue_served_check(session, access, endpoint, sender, settings)


def _check_spec(version: AdapterVersion, team: str, tasks: int) -> EvalSpec:
    """The FIM tasks of the version's evaluation (its seed and cuts; the first `tasks`), or,
    for a version never evaluated, those an evaluation of its training set would cut."""
    if version.evaluation:
        spec = EvalReport.model_validate(version.evaluation).spec
        fim = spec.fim.model_copy(update={"tasks": min(tasks, spec.fim.tasks)})
        # Team, base and adapter are the endpoint's version's, whatever a stored report says.
        update = {
            "team": team,
            "base_model": version.base_model,
            "adapter": version.prefix,
            "fim": fim,
            "base_source": None,
        }
        return spec.model_copy(update=update)
    if not version.dataset_uid:
        raise InvalidInput(
            "this version records no dataset and was never evaluated: evaluate it first",
            field="endpoint",
        )
    return EvalSpec(
        team=team,
        base_model=version.base_model,
        adapter=version.prefix,
        dataset_id=version.dataset_uid,
        fim=FimSpec(tasks=tasks),
    )
