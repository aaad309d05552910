"""The cluster executor: a fine-tune becomes a FineTuneJob custom resource in the team namespace.

The operator (`tailor_operator`) turns the resource into batch/v1 Jobs and reports each
phase back to `/v1/internal/jobs/{id}/status` (see `tailor.jobs.cluster.apply_phase`), so the
job here stays `queued` until the operator says it runs. The resource's `spec.train` is the
TrainSpec unchanged: a job submitted on a laptop and one submitted to the cluster differ
only in where the entrypoint runs.

The `kubernetes` client (the `k8s` extra) is imported only when a job is submitted, so the
embedded default never needs it.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.db.models import Job, Team
from tailor.errors import TailorError
from tailor.finetunes.service import with_base_source
from tailor.jobs import service as jobs
from tailor.tenancy import TeamAccess
from tailor.train.spec import TrainSpec

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

GROUP = "tailor.dev"
VERSION = "v1alpha1"
PLURAL = "finetunejobs"
KIND = "FineTuneJob"


def team_namespace(settings: Settings, team_slug: str) -> str:
    """The team's namespace (the operator's Team handler creates it with its queues)."""
    return f"{settings.kubernetes_namespace_prefix}{team_slug}"


def train_resources(spec: TrainSpec) -> dict[str, Any]:
    """Nodes and GPUs for a TrainSpec: one GPU per training process, on one node.

    LoRA and QLoRA train in one process on one GPU; full fine-tuning runs
    `num_processes` FSDP ranks, one per GPU. Everything else (GPU type, memory,
    retries) keeps the platform defaults the admin set in the chart.
    """
    gpus = spec.num_processes if spec.method == "full" else 1
    return {"nodes": 1, "gpusPerNode": gpus}


def finetune_resource(job_uid: str, spec: TrainSpec, namespace: str) -> dict[str, Any]:
    """The FineTuneJob manifest of a job (named after the job, which is a DNS-safe id)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": job_uid,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "tailor", "tailor.dev/job-id": job_uid},
        },
        "spec": {
            "team": spec.team,
            "jobId": job_uid,
            "train": spec.model_dump(mode="json"),
            "resources": train_resources(spec),
        },
    }


def connect() -> ApiClient:
    """A client for the cluster: in-cluster credentials, else the kubeconfig ($KUBECONFIG)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        # Read now: the client captures $KUBECONFIG once, when it is imported.
        path = os.environ.get("KUBECONFIG")
        config.load_kube_config(config_file=path, client_configuration=configuration)
    return client.ApiClient(configuration)


class SubmitRejected(RuntimeError):
    """The cluster refused the resource; retrying the same request cannot help."""


def create(api: ApiClient, manifest: dict[str, Any]) -> bool:
    """Create the resource; False when it exists already (a redelivered task)."""
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

    namespace = manifest["metadata"]["namespace"]
    try:
        CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, manifest
        )
    except ApiException as exc:
        if exc.status == 409:
            return False
        if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
            raise SubmitRejected(_rejection(exc, namespace)) from exc
        raise
    return True


def delete(api: ApiClient, namespace: str, name: str) -> bool:
    """Delete the resource (the operator's finaliser cleans up); False if already gone."""
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

    try:
        CustomObjectsApi(api).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _rejection(exc: Exception, namespace: str) -> str:
    status = getattr(exc, "status", None)
    try:
        detail = json.loads(getattr(exc, "body", None) or "{}").get("message")
    except ValueError:
        detail = None
    detail = detail or getattr(exc, "reason", "") or str(exc)
    if status == 404:
        return (
            f"namespace {namespace} or the FineTuneJob CRD does not exist: create the team's "
            f"Team resource and install the chart's CRDs ({detail})"
        )
    if status in (401, 403):
        return f"the worker may not create FineTuneJobs in {namespace}: check its RBAC ({detail})"
    return f"the cluster rejected the FineTuneJob ({status}): {detail}"


def submit_finetune(session: Session, settings: Settings, job: Job, api: ApiClient) -> None:
    """Create the job's FineTuneJob and note where it runs; the operator reports from here on.

    A resource the cluster rejects fails the job with the reason; an unreachable cluster
    raises, so the task is delivered again.
    """
    namespace = team_namespace(settings, session.get_one(Team, job.team_id).slug)
    try:
        spec = with_base_source(session, TrainSpec.model_validate(job.spec))
        created = create(api, finetune_resource(job.uid, spec, namespace))
    except SubmitRejected as exc:
        jobs.fail(session, job, str(exc))
        return
    except TailorError as exc:  # the base left the catalog since the request
        jobs.fail(session, job, exc.detail)
        return
    job.executor_ref = f"{namespace}/{job.uid}"
    what = "submitted" if created else "already submitted"
    jobs.log(session, job, f"{what} FineTuneJob {job.executor_ref}; waiting for the cluster")


def cancel_finetune(job: Job, api: ApiClient, namespace: str | None = None) -> bool:
    """Delete a job's FineTuneJob; False if there is none (never submitted, or gone).

    The resource is named after the job in the team's `namespace`, so it is found even
    when the worker created it but had not yet recorded `executor_ref`. The operator's
    finaliser deletes the Job, Service and ConfigMap and reports `Cancelled`, which
    finishes the job here (`tailor.jobs.cluster.apply_phase`).
    """
    if job.executor != "kubernetes":
        return False
    ref = job.executor_ref or (f"{namespace}/{job.uid}" if namespace else None)
    if not ref:
        return False
    ns, name = ref.split("/", 1)
    return delete(api, ns, name)


class ClusterUnavailable(TailorError):
    """The Kubernetes API could not be reached or refused the call; nothing changed."""

    status = 503
    type_slug = "cluster-unavailable"
    title = "Cluster unavailable"


def cancel_job(
    session: Session, settings: Settings, access: TeamAccess, job: Job, api: ApiClient | None
) -> Job:
    """Cancel a job from the API; for a cluster job, delete its workload first.

    The deletion happens inside the request's transaction: if the cluster cannot be
    reached the request fails with 503 and the job is unchanged (try again). Once the
    FineTuneJob is deleted, the operator tears the Job down and reports `Cancelled`; a job
    with no FineTuneJob (never submitted, or already gone) is cancelled at once.
    """
    repeated = job.cancel_requested
    job = jobs.request_cancel(session, access, job, settings.job_stale_after_s)
    if job.executor != "kubernetes" or job.state.final:
        return job
    if api is None:
        raise ClusterUnavailable(
            f"job {job.uid} runs on the cluster but this API has no Kubernetes credentials "
            "(in-cluster service account or KUBECONFIG) and TAILOR_EXECUTOR=kubernetes"
        )
    namespace = team_namespace(settings, access.team.slug)
    try:
        deleted = cancel_finetune(job, api, namespace)
    except Exception as exc:  # ApiException, connection errors: the cluster's answer
        raise ClusterUnavailable(
            f"could not delete FineTuneJob {namespace}/{job.uid}: {_describe(exc)}; "
            "the job is unchanged, cancel it again"
        ) from exc
    if deleted and not repeated:
        jobs.log(session, job, f"deleted FineTuneJob {namespace}/{job.uid}; waiting for the "
                 "operator to stop its pods")  # fmt: skip
    elif not deleted:
        jobs.mark_cancelled(session, job)
    return job


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return f"the API may not delete FineTuneJobs ({status}): check its RBAC"
    return f"{status} {getattr(exc, 'reason', '')}".strip() if status else str(exc)
