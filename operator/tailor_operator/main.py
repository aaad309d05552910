"""kopf handlers, and nothing else: each hands its resource to a reconcile function.

Run: `kopf run -m tailor_operator.main --all-namespaces --standalone`.
"""

from __future__ import annotations

from typing import Any

import kopf

from tailor_operator import endpoints, finetunes, runtime, teams
from tailor_operator.naming import MANAGED_BY
from tailor_operator.resources import GROUP, VERSION

_MANAGED = "app.kubernetes.io/managed-by"
_COMPONENT = "app.kubernetes.io/component"


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    """Fill the memo (config, cluster client, status sink) and kopf's persistence."""
    runtime.configure(settings, memo)


@kopf.on.login()
def login(memo: Any, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """Connect to the configured API server, else in-cluster or kubeconfig."""
    return runtime.login(memo, **kwargs)


# --- FineTuneJob -------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, "finetunejobs")
@kopf.on.create(GROUP, VERSION, "finetunejobs")
def finetune_created(
    name: str, namespace: str | None, uid: str, spec: kopf.Spec, status: kopf.Status,
    memo: Any, patch: kopf.Patch, **_: Any,
) -> None:  # fmt: skip
    """Create the ConfigMap, Service and Job of a fine-tune (idempotent on resume)."""
    ns, rt = runtime.namespaced(namespace), runtime.runtime(memo)
    finetunes.start(rt, name, ns, uid, spec, status, patch)


@kopf.on.field(GROUP, VERSION, "finetunejobs", field="spec.suspend")
def finetune_suspended(
    name: str, namespace: str | None, old: Any, new: Any, memo: Any, **_: Any
) -> None:
    """Suspend or resume the fine-tune's Job."""
    if old is not None or new:  # not the creation of an unsuspended job
        rt = runtime.runtime(memo)
        finetunes.set_suspended(rt, name, runtime.namespaced(namespace), bool(new))


@kopf.on.event("batch", "v1", "jobs", labels={_MANAGED: MANAGED_BY, _COMPONENT: "trainer"})
def job_changed(body: kopf.Body, type: str | None, memo: Any, **_: Any) -> None:
    """Mirror a trainer Job's status onto its FineTuneJob and into the API."""
    if type != "DELETED":
        finetunes.sync_from_job(runtime.runtime(memo), body)


@kopf.on.event(GROUP, VERSION, "finetunejobs")
def finetune_event(
    name: str, namespace: str | None, spec: kopf.Spec, status: kopf.Status, type: str | None,
    memo: Any, **_: Any,
) -> None:  # fmt: skip
    """Re-send a phase the API has not acknowledged (on every event and re-list)."""
    if type != "DELETED":  # also on every re-list: a phase the API missed is sent again
        finetunes.resend(runtime.runtime(memo), name, runtime.namespaced(namespace), spec, status)


@kopf.on.delete(GROUP, VERSION, "finetunejobs")
def finetune_deleted(
    name: str, namespace: str | None, spec: kopf.Spec, status: kopf.Status,
    memo: Any, retry: int, **_: Any,
) -> None:  # fmt: skip
    """Cancel: delete the Job, Service and ConfigMap, report the cancellation."""
    ns, rt = runtime.namespaced(namespace), runtime.runtime(memo)
    finetunes.cancel(rt, name, ns, spec, status, retry)


# --- InferenceEndpoint -------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, "inferenceendpoints")
@kopf.on.create(GROUP, VERSION, "inferenceendpoints")
@kopf.on.update(GROUP, VERSION, "inferenceendpoints")
def endpoint_changed(
    name: str, namespace: str | None, uid: str, spec: kopf.Spec, status: kopf.Status,
    memo: Any, patch: kopf.Patch, **_: Any,
) -> None:  # fmt: skip
    """Create or roll the endpoint's ConfigMap, Deployment, Service and HPA."""
    ns, rt = runtime.namespaced(namespace), runtime.runtime(memo)
    phase = status.get("phase")
    patch.status.update(endpoints.apply(rt, name, ns, uid, spec, phase))


@kopf.on.event("apps", "v1", "deployments", labels={_MANAGED: MANAGED_BY, _COMPONENT: "inference"})
def deployment_changed(body: kopf.Body, type: str | None, memo: Any, **_: Any) -> None:
    """Mirror a serving Deployment's readiness onto its InferenceEndpoint."""
    if type != "DELETED":
        endpoints.sync_from_deployment(runtime.runtime(memo), body)


@kopf.on.delete(GROUP, VERSION, "inferenceendpoints")
def endpoint_deleted(name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    """Remove the endpoint's workload."""
    endpoints.delete(runtime.runtime(memo), name, runtime.namespaced(namespace))


# --- Team --------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, "teams")
@kopf.on.create(GROUP, VERSION, "teams")
@kopf.on.update(GROUP, VERSION, "teams")
def team_changed(
    name: str, uid: str, spec: kopf.Spec, memo: Any, patch: kopf.Patch, **_: Any
) -> None:
    """Provision the team's namespace, quota, isolation and Kueue queues."""
    patch.status.update(teams.apply(runtime.runtime(memo), name, uid, spec))


@kopf.on.delete(GROUP, VERSION, "teams")
def team_deleted(name: str, memo: Any, **_: Any) -> None:
    """Remove the team's ClusterQueue and namespace."""
    teams.delete(runtime.runtime(memo), name)
