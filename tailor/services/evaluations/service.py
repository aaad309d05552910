"""Starting evaluations of registered adapter versions; the caller's transaction commits."""

from __future__ import annotations

from celery import Celery
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.db.models import AdapterVersion, Team
from tailor.errors import InvalidInput
from tailor.jobs import service as jobs
from tailor.jobs.schemas import JobOut
from tailor.queue import TASKS, send_after_commit
from tailor.services.adapters.service import get_version
from tailor.services.base_models import service as catalog
from tailor.services.datasets.service import trainable_dataset
from tailor.stages.evaluate.spec import EvalSpec, FimSpec, HumanEvalSpec
from tailor.tenancy import TeamAccess

EVALUATE_TASK = TASKS["evaluation"]


class EvaluationCreate(BaseModel):
    """Evaluate a version of one of the team's adapters against its base model."""

    model_config = ConfigDict(extra="forbid")
    adapter: str = Field(min_length=1, max_length=100, description="Adapter name.")
    version: int | None = Field(None, ge=1, description="Default: the latest version.")
    dataset_id: str | None = Field(None, description="Held-out code; default the training set.")
    seed: int = Field(0, ge=0)
    fim: FimSpec = Field(default_factory=FimSpec)
    humaneval: HumanEvalSpec = Field(default_factory=HumanEvalSpec)


def auto_evaluation(
    settings: Settings, adapter: str, version: int, dataset_id: str | None = None
) -> EvaluationCreate:
    """The quick evaluation queued after every new version (the full one is on request)."""
    return EvaluationCreate(
        adapter=adapter,
        version=version,
        dataset_id=dataset_id,
        fim=FimSpec(tasks=settings.auto_eval_fim_tasks),
        humaneval=HumanEvalSpec(subset=settings.auto_eval_humaneval_subset or None),
    )


def queue_evaluation(
    session: Session,
    team: Team,
    version: AdapterVersion,
    sender: Celery,
    request: EvaluationCreate,
    access: TeamAccess | None = None,
) -> JobOut:
    """Create and send an evaluation job for `version` (already known to be the team's)."""
    dataset_id = request.dataset_id or version.dataset_uid
    if not dataset_id:
        raise InvalidInput("this version records no dataset: pass dataset_id", field="dataset_id")
    spec = EvalSpec(
        team=team.slug,
        base_model=version.base_model,
        adapter=version.prefix,
        dataset_id=dataset_id,
        seed=request.seed,
        fim=request.fim,
        humaneval=request.humaneval,
    )
    payload = {
        "eval": spec.model_dump(mode="json"),
        "adapter_version_id": version.id,
        "adapter": request.adapter,
        "version": version.version,
    }
    job = (
        jobs.create_job(session, access, "evaluation", payload)
        if access
        else jobs.create_system_job(session, team.id, "evaluation", payload)
    )
    send_after_commit(session, sender, EVALUATE_TASK, job.uid)
    return JobOut.of(job)


def start_evaluation(
    session: Session, access: TeamAccess, request: EvaluationCreate, sender: Celery
) -> JobOut:
    """Queue an evaluation of one of the caller's team's adapter versions (404 otherwise)."""
    _adapter, version = get_version(session, access, request.adapter, request.version)
    catalog.resolve(session, version.base_model)  # a base that left the catalog cannot load
    if request.dataset_id is not None:
        trainable_dataset(session, access, request.dataset_id)  # 404 for another team's
    return queue_evaluation(session, access.team, version, sender, request, access)
