"""FineTuneJob reconciliation: the side effects behind the handlers in main.py.

Create the ConfigMap and the Job (one node) or JobSet (several); mirror its status onto
the FineTuneJob and into the status sink; pause and resume (with Kueue through the
Workload's `spec.active`, since Kueue un-suspends an admitted Job); clean up on delete.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

import kopf
import urllib3
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from tailor.stages.train.sizing import SizingError
from tailor_operator import namespaces, naming, status, training
from tailor_operator.kubeapi import as_kopf_error
from tailor_operator.pods import UnknownGpuType
from tailor_operator.resources import API_VERSION, FineTuneJobSpec
from tailor_operator.runtime import Runtime, describe_invalid, report

log = logging.getLogger(__name__)

KIND = "FineTuneJob"
WORKLOAD_API = namespaces.KUEUE_API
_API_ERRORS = (ApiException, urllib3.exceptions.HTTPError)


def _job_id(spec: Mapping[str, Any], name: str) -> str:
    return str(spec.get("jobId") or name)


def _set_status(rt: Runtime, name: str, namespace: str, new: dict[str, Any]) -> None:
    try:
        rt.cluster.patch(API_VERSION, KIND, namespace, name, {"status": new}, "status")
    except _API_ERRORS as exc:
        raise as_kopf_error(exc, f"updating {KIND} {namespace}/{name} status") from exc


def _fail(
    rt: Runtime,
    name: str,
    namespace: str,
    spec: Mapping[str, Any],
    patch: MutableMapping[str, Any],
    message: str,
) -> kopf.PermanentError:
    # Written through kopf's own patch, together with its record of the failed handler:
    # a separate status write would race it and make kopf run the handler again.
    failed = status.failed_status("InvalidSpec", message, status.now())
    if report(rt, KIND, namespace, name, _job_id(spec, name), failed):
        failed["reportedPhase"] = failed["phase"]
    patch.setdefault("status", {}).update(failed)
    return kopf.PermanentError(f"{KIND} {namespace}/{name} cannot run: {message}")


def start(
    rt: Runtime,
    name: str,
    namespace: str,
    uid: str,
    spec: Mapping[str, Any],
    current: Mapping[str, Any],
    patch: MutableMapping[str, Any],
) -> None:
    """Create what the job needs (idempotent) and name the Job in the status patch.

    An unusable spec fails the FineTuneJob at once (status, sink, PermanentError).
    The phase itself comes from the Job's events (sync_from_job): one writer, one report.
    """
    if current.get("phase") in status.TERMINAL:
        return  # resumed after the end: nothing left to run
    try:
        parsed = FineTuneJobSpec.model_validate(dict(spec))
        ft = training.finetune(name, namespace, uid, parsed, rt.config)
        manifests = training.build_training(ft, rt.config)
    except ValidationError as exc:
        raise _fail(rt, name, namespace, spec, patch, describe_invalid(exc)) from exc
    except (UnknownGpuType, SizingError) as exc:
        raise _fail(rt, name, namespace, spec, patch, str(exc)) from exc
    # Job templates cannot change; the job's token Secret never does (derived from its id),
    # and the operator may create Secrets but reads only the ones it names in its role.
    rt.cluster.ensure_all(manifests, immutable={"Job", "JobSet", "Secret"})
    if not current.get("jobName"):
        patch.setdefault("status", {}).update(
            {
                "jobName": training.job_name(name),
                "nodes": ft.layout.nodes,
                "gpusPerNode": ft.layout.gpus_per_node,
            }
        )


def _usage(
    rt: Runtime,
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    job: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What the fine-tune's pods used so far (see `status.workload_usage`)."""
    gpu_type = (spec.get("resources") or {}).get("gpuType") or rt.config.defaultGpuType
    pool = rt.config.gpuTypes.get(gpu_type)
    resource = pool.resourceName if pool else "nvidia.com/gpu"
    try:
        pods = rt.cluster.list_labelled("v1", "Pod", namespace, {naming.FINETUNE_LABEL: name})
    except _API_ERRORS as exc:
        raise as_kopf_error(exc, f"listing the pods of {KIND} {namespace}/{name}") from exc
    at = datetime.now(UTC)
    return status.workload_usage(pods, dict(job or {}), resource, gpu_type, at)


def _job_usage(
    rt: Runtime, namespace: str, name: str, spec: Mapping[str, Any], current: Mapping[str, Any]
) -> dict[str, Any]:
    """`_usage`, reading the fine-tune's Job or JobSet first (its times stand in for pods gone)."""
    api_version, kind = _workload_kind(current)
    try:
        job = rt.cluster.get(api_version, kind, namespace, training.job_name(name))
    except _API_ERRORS as exc:
        raise as_kopf_error(exc, f"reading the {kind} of {KIND} {namespace}/{name}") from exc
    return _usage(rt, namespace, name, spec, job)


def _owner(body: Mapping[str, Any], kind: str) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("apiVersion") == API_VERSION:
            return str(ref["name"])
    return None


def sync_from_job(rt: Runtime, job: Mapping[str, Any]) -> None:
    """Mirror a Job's or JobSet's status onto its FineTuneJob and the sink (when it changed)."""
    name = _owner(job, KIND)
    namespace = job.get("metadata", {}).get("namespace")
    if not name or not namespace:
        return
    try:
        owner = rt.cluster.get(API_VERSION, KIND, namespace, name)
    except _API_ERRORS as exc:
        raise as_kopf_error(exc, f"reading {KIND} {namespace}/{name}") from exc
    if owner is None or owner.get("metadata", {}).get("deletionTimestamp"):
        return  # being cancelled: the delete handler reports that
    spec, previous = owner.get("spec") or {}, owner.get("status") or {}
    if previous.get("phase") in status.TERMINAL:
        return
    labels = job.get("metadata", {}).get("labels") or {}
    observe = status.observe_jobset if job.get("kind") == "JobSet" else status.observe_job
    observed = observe(
        dict(job),
        user_suspended=bool(spec.get("suspend")),
        queued_by_kueue=naming.QUEUE_LABEL in labels,
    )
    new = status.finetune_status(observed, previous, job["metadata"]["name"], status.now())
    unreported = previous.get("reportedPhase") != new["phase"]
    if not status.changed(previous, new) and not unreported:
        return
    new["reportedPhase"] = previous.get("reportedPhase")
    usage = _usage(rt, namespace, name, spec, job) if new["phase"] in status.TERMINAL else None
    if unreported and report(rt, KIND, namespace, name, _job_id(spec, name), new, usage):
        new["reportedPhase"] = new["phase"]
    _set_status(rt, name, namespace, new)


def resend(
    rt: Runtime, name: str, namespace: str, spec: Mapping[str, Any], current: Mapping[str, Any]
) -> None:
    """Re-send a phase the sink has not acknowledged yet (kopf re-lists periodically)."""
    phase = current.get("phase")
    if not phase or current.get("reportedPhase") == phase:
        return
    usage = None
    if phase in status.TERMINAL:
        usage = _job_usage(rt, namespace, name, spec, current)
    if report(rt, KIND, namespace, name, _job_id(spec, name), dict(current), usage):
        _set_status(rt, name, namespace, {"reportedPhase": phase})


def _workload_kind(current: Mapping[str, Any]) -> tuple[str, str]:
    multi_node = int(current.get("nodes") or 1) > 1
    return (training.JOBSET_API, "JobSet") if multi_node else ("batch/v1", "Job")


def kueue_workload(
    rt: Runtime, namespace: str, owner_kind: str, owner: str
) -> dict[str, Any] | None:
    """The Kueue Workload Kueue made for a Job or JobSet (owned by it), if any yet."""
    try:
        workloads = rt.cluster.list_objects(WORKLOAD_API, "Workload", namespace)
    except _API_ERRORS as exc:
        raise as_kopf_error(exc, f"listing Workloads in {namespace}") from exc
    for workload in workloads:
        refs = workload.get("metadata", {}).get("ownerReferences") or []
        if any(r.get("kind") == owner_kind and r.get("name") == owner for r in refs):
            return workload
    return None


def set_suspended(
    rt: Runtime, name: str, namespace: str, current: Mapping[str, Any], suspend: bool
) -> None:
    """Pause or resume a fine-tune.

    With Kueue, the Workload's `spec.active` (false: Kueue evicts it and stops its pods;
    true: it queues again); Kueue would undo a Job's own `suspend`. Without Kueue, the
    Job's or JobSet's `spec.suspend`.
    """
    api_version, kind = _workload_kind(current)
    owner = training.job_name(name)
    doing = "pausing" if suspend else "resuming"
    if rt.config.kueue.enabled:
        workload = kueue_workload(rt, namespace, kind, owner)
        if workload is None:
            raise kopf.TemporaryError(f"{doing} {kind} {owner}: Kueue has no Workload yet", delay=5)
        target = (WORKLOAD_API, "Workload", workload["metadata"]["name"])
        body: dict[str, Any] = {"spec": {"active": not suspend}}
    else:
        target, body = (api_version, kind, owner), {"spec": {"suspend": suspend}}
    try:
        rt.cluster.patch(target[0], target[1], namespace, target[2], body)
    except _API_ERRORS as exc:
        raise as_kopf_error(exc, f"{doing} {target[1]} {target[2]}") from exc


def cancel(
    rt: Runtime,
    name: str,
    namespace: str,
    spec: Mapping[str, Any],
    current: Mapping[str, Any],
    retry: int,
) -> None:
    """Delete the Job or JobSet and the ConfigMap (gone already is fine); report the cancel with
    what the pods used until then."""
    usage = None
    if current.get("phase") not in status.TERMINAL:
        usage = _job_usage(rt, namespace, name, spec, current)
    children = [
        (*_workload_kind(current), training.job_name(name)),
        ("v1", "ConfigMap", training.configmap_name(name)),
    ]
    for api_version, kind, child in children:
        try:
            rt.cluster.delete(api_version, kind, namespace, child)
        except _API_ERRORS as exc:
            raise as_kopf_error(exc, f"deleting {kind} {namespace}/{child}") from exc
    if current.get("phase") in status.TERMINAL:
        return
    cancelled = {"phase": "Cancelled", "reason": "Cancelled", "conditions": []}
    if not report(rt, KIND, namespace, name, _job_id(spec, name), cancelled, usage) and retry < 3:
        raise kopf.TemporaryError("could not report the cancellation yet", delay=5)
