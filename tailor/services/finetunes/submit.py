"""The cluster executor: a fine-tune becomes a FineTuneJob custom resource in the team namespace.

The operator (`tailor_operator`) turns the resource into batch/v1 Jobs and reports each
phase back to `/v1/internal/jobs/{id}/status` (see `tailor.jobs.workloads.apply_phase`), so the
job here stays `queued` until the operator says it runs. The resource's `spec.train` is the
TrainSpec unchanged: a job submitted on a laptop and one submitted to the cluster differ
only in where the entrypoint runs.

Talking to the cluster itself (connecting, namespaces, errors) is `tailor.k8s`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.db.models import Job, Team
from tailor.errors import TailorError
from tailor.jobs import service as jobs
from tailor.k8s import FINETUNE_JOB, Rejected, create, manifest, team_namespace
from tailor.services.finetunes.service import with_base_source
from tailor.stages.train.spec import TrainSpec

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


def train_resources(spec: TrainSpec) -> dict[str, Any]:
    """The GPUs a TrainSpec asks for: one per training process.

    LoRA and QLoRA train in one process on one GPU; full fine-tuning runs
    `num_processes` FSDP ranks, one per GPU. The operator chooses nodes x GPUs per node
    from the GPU type (16 on 8-GPU nodes: 2 nodes); everything else (GPU type, memory,
    retries) keeps the platform defaults the admin set in the chart.
    """
    return {"gpus": spec.num_processes if spec.method == "full" else 1}


def finetune_resource(job_uid: str, spec: TrainSpec, namespace: str) -> dict[str, Any]:
    """The FineTuneJob manifest of a job (named after the job, which is a DNS-safe id)."""
    body = {
        "team": spec.team,
        "jobId": job_uid,
        "train": spec.model_dump(mode="json"),
        "resources": train_resources(spec),
    }
    return manifest(FINETUNE_JOB, job_uid, namespace, {"tailor.dev/job-id": job_uid}, body)


def submit_finetune(session: Session, settings: Settings, job: Job, api: ApiClient) -> None:
    """Create the job's FineTuneJob and note where it runs; the operator reports from here on.

    A resource the cluster rejects fails the job with the reason; an unreachable cluster
    raises, so the task is delivered again.
    """
    namespace = team_namespace(settings, session.get_one(Team, job.team_id).slug)
    try:
        spec = with_base_source(session, TrainSpec.model_validate(job.spec))
        created = create(api, FINETUNE_JOB, finetune_resource(job.uid, spec, namespace))
    except Rejected as exc:
        jobs.fail(session, job, str(exc))
        return
    except TailorError as exc:  # the base left the catalog since the request
        jobs.fail(session, job, exc.detail)
        return
    job.executor_ref = f"{namespace}/{job.uid}"
    what = "submitted" if created else "already submitted"
    jobs.log(session, job, f"{what} FineTuneJob {job.executor_ref}; waiting for the cluster")
