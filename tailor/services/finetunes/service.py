"""Starting fine-tunes from the API; the caller's transaction commits."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.db.models import Job, JobState
from tailor.errors import InvalidInput
from tailor.jobs import service as jobs
from tailor.jobs.schemas import JobOut
from tailor.queue import TASKS, send_after_commit
from tailor.services.adapters.service import next_version
from tailor.services.base_models import service as catalog
from tailor.services.costs import service as costs
from tailor.services.costs.schemas import EstimateOut
from tailor.services.datasets.service import trainable_dataset
from tailor.stages.train.sizing import SizingError, plan_layout
from tailor.stages.train.spec import TrainSpec
from tailor.tenancy import TeamAccess

FINETUNE_TASK = TASKS["finetune"]


@dataclass(frozen=True)
class ClusterNodes:
    """The default GPU type's node size, which a cluster fine-tune must fit."""

    gpus_per_node: int
    max_nodes: int
    gpu_type: str = "the default GPU type's"


def cluster_nodes(settings: Settings) -> ClusterNodes | None:
    """The node size cluster fine-tunes must fit, or None when jobs run locally."""
    if settings.executor != "kubernetes":
        return None
    nodes, limit, gpu_type = (
        settings.cluster_gpus_per_node,
        settings.cluster_max_nodes,
        settings.default_gpu_type,
    )
    return ClusterNodes(nodes, limit, f"{gpu_type}'s")


def check_fits_cluster(spec: TrainSpec, nodes: ClusterNodes) -> None:
    """Refuse a process count no layout of whole nodes holds (the operator's own rule)."""
    gpus = spec.num_processes if spec.method == "full" else 1
    try:
        plan_layout(gpus, nodes.gpus_per_node, nodes.gpu_type, nodes.max_nodes)
    except SizingError as exc:
        raise InvalidInput(f"num_processes: {exc}", field="num_processes") from exc


def start_finetune(
    session: Session, access: TeamAccess, spec: TrainSpec, sender: Celery, settings: Settings
) -> JobOut:
    """Queue a fine-tune of the team's dataset; the adapter gets the next version number.

    The job carries its estimate (GPU-hours, price); a team past its budget's hard limit, or
    one this fine-tune's estimate would take past it, is refused (402) and nothing is made.
    """
    if spec.team != access.team.slug:
        raise InvalidInput(
            f"spec.team is '{spec.team}' but the URL names team '{access.team.slug}'", field="team"
        )
    cluster = cluster_nodes(settings)
    if cluster is not None:
        check_fits_cluster(spec, cluster)
    base = catalog.resolve(session, spec.base_model)
    if spec.base_source is not None:
        raise InvalidInput(
            "base_source is set by the platform from the catalog entry base_model names; "
            "leave it out",
            field="base_source",
        )
    catalog.check_revision(base, spec.base_revision, "base_revision")
    trainable_dataset(session, access, spec.dataset_id)
    estimate = costs.estimate_finetune(session, access, spec, settings)
    costs.require_budget(estimate)
    version = next_version(session, access.team_id, spec.adapter_name)
    pending = (
        session.query(Job)
        .filter(
            Job.team_id == access.team_id,
            Job.kind == "finetune",
            Job.state.in_([JobState.queued, JobState.running]),
        )
        .all()
    )
    taken = {
        j.spec.get("adapter_version")
        for j in pending
        if j.spec.get("adapter_name") == spec.adapter_name
    }
    while str(version) in taken:
        version += 1
    spec = spec.model_copy(update={"adapter_version": str(version), "base_revision": base.revision})
    job = jobs.create_job(
        session, access, "finetune", spec.model_dump(mode="json"), settings.executor
    )
    job.estimate = estimate.model_dump(mode="json", exclude={"budget_warning", "budget_refusal"})
    jobs.log(session, job, f"estimate: {describe_estimate(estimate)}")
    warnings = [estimate.budget_warning] if estimate.budget_warning else []
    for warning in warnings:
        jobs.log(session, job, warning, level="warning")
    send_after_commit(session, sender, FINETUNE_TASK, job.uid)
    return JobOut.of(job).model_copy(update={"warnings": warnings})


def describe_estimate(estimate: EstimateOut) -> str:
    """One line for the job's log: GPU-hours, price and the basis."""
    if estimate.gpu_hours is None:
        return f"none ({estimate.detail})"
    price = (
        "no price set" if estimate.price is None else (f"{estimate.price:,.2f} {estimate.currency}")
    )
    return (
        f"{estimate.gpu_hours:.4g} GPU-hours on {estimate.gpu_type or 'the CPU'}, {price} "
        f"({estimate.basis}: {estimate.detail})"
    )


def with_base_source(session: Session, spec: TrainSpec) -> TrainSpec:
    """The spec the entrypoint runs (worker side): its catalog base resolved to its files."""
    base = catalog.resolve(session, spec.base_model)
    return spec.model_copy(update={"base_source": base.source, "base_revision": base.revision})
