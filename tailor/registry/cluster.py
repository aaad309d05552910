"""Endpoints in cluster mode: each published endpoint is an InferenceEndpoint resource.

The database is the desired state; the cluster follows it. Publishing, promoting, rolling
back and unpublishing change the database in the request's transaction and, once it has
committed, send the `tailor.endpoint.sync` task (`sync_after_commit`). The task
(`sync_endpoint`) reads the endpoint as it is *now* and makes the team namespace's
InferenceEndpoint match: created on publish, patched on promotion or rollback (the
operator rolls the Deployment over), deleted on unpublish. Why a task after the commit:

- a request never half-succeeds: what the API answered is what the database holds;
- a cluster that is down delays the change instead of failing it: the task retries with
  backoff, and every run converges on the latest state, so repeats and reordering are
  harmless (sending the task again repairs any drift);
- a resource the cluster refuses (RBAC, missing CRD or namespace) is logged by the worker
  with the fix, and the InferenceEndpoint's own status shows readiness.

The builders are pure; the `kubernetes` client is imported only when a call is made.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.catalog import service as catalog
from tailor.config import Settings
from tailor.db.models import AdapterVersion, Endpoint, Team
from tailor.finetunes.cluster import team_namespace
from tailor.queue import send_after_commit
from tailor.registry.service import EndpointHook
from tailor.serve.spec import AdapterRef, EndpointSpec

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

GROUP = "tailor.dev"
VERSION = "v1alpha1"
PLURAL = "inferenceendpoints"
KIND = "InferenceEndpoint"
SYNC_TASK = "tailor.endpoint.sync"
VLLM_GPUS = 1  # vLLM serves on a GPU; more (tensor parallel) is a cluster-side edit


def endpoint_spec(
    team: str, endpoint: Endpoint, version: AdapterVersion, base_source: str
) -> EndpointSpec:
    """What an endpoint row serves: its version's base (the catalog's source) and adapter."""
    return EndpointSpec(
        team=team,
        base_model=base_source,
        adapters=[
            AdapterRef(name=endpoint.name, version=str(version.version), prefix=version.prefix)
        ],
        replicas=endpoint.replicas,
        backend="vllm" if endpoint.backend == "vllm" else "tailor",
    )


def endpoint_resource(name: str, namespace: str, spec: EndpointSpec) -> dict[str, Any]:
    """The InferenceEndpoint manifest of an endpoint (named after it, in the team namespace)."""
    body: dict[str, Any] = spec.model_dump(mode="json")
    if spec.backend == "vllm":
        body["resources"] = {"gpus": VLLM_GPUS}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "tailor", "tailor.dev/team": spec.team},
        },
        "spec": body,
    }


def desired_resource(
    session: Session, settings: Settings, team_id: int, name: str
) -> tuple[str, dict[str, Any] | None] | None:
    """(namespace, manifest) the cluster should hold; manifest None once unpublished.

    None when the team itself is gone (deleting its Team removes the namespace).
    """
    team = session.get(Team, team_id)
    if team is None:
        return None
    namespace = team_namespace(settings, team.slug)
    endpoint = session.scalar(
        select(Endpoint).where(Endpoint.team_id == team_id, Endpoint.name == name)
    )
    if endpoint is None:
        return namespace, None
    version = session.get_one(AdapterVersion, endpoint.version_id)
    base = catalog.resolve(session, version.base_model)
    spec = endpoint_spec(team.slug, endpoint, version, base.source)
    return namespace, endpoint_resource(name, namespace, spec)


class EndpointRejected(RuntimeError):
    """The cluster refused the resource; sending it again unchanged cannot help."""


def apply(api: ApiClient, manifest: dict[str, Any]) -> str:
    """Create the resource, or merge its spec into the existing one: "created"/"updated"."""
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

    custom = CustomObjectsApi(api)
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
            return "created"
        except ApiException as exc:
            if exc.status != 409:
                raise
        patch = {"metadata": {"labels": manifest["metadata"]["labels"]}, "spec": manifest["spec"]}
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)
        return "updated"
    except ApiException as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
            raise EndpointRejected(_rejection(exc, namespace)) from exc
        raise


def remove(api: ApiClient, namespace: str, name: str) -> bool:
    """Delete the resource (the operator removes its Deployment); False if already gone."""
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
    if status == 404:
        return (
            f"namespace {namespace} or the InferenceEndpoint CRD does not exist: create the "
            "team's Team resource and install the chart's CRDs"
        )
    if status in (401, 403):
        return f"the worker may not write InferenceEndpoints in {namespace}: check its RBAC"
    return f"the cluster rejected the InferenceEndpoint ({status}): {getattr(exc, 'body', '')}"


def sync_endpoint(
    sessions: sessionmaker[Session], settings: Settings, team_id: int, name: str, api: ApiClient
) -> str:
    """Make the cluster hold what the database says endpoint `name` serves now.

    Returns what it did ("created", "updated", "deleted", "absent", "rejected"). An
    unreachable cluster raises, so the task is retried.
    """
    with sessions() as session:
        desired = desired_resource(session, settings, team_id, name)
    if desired is None:
        return "absent"
    namespace, manifest = desired
    if manifest is None:
        return "deleted" if remove(api, namespace, name) else "absent"
    try:
        return apply(api, manifest)
    except EndpointRejected as exc:
        log.error("endpoint %s/%s not synced to the cluster: %s", namespace, name, exc)
        return "rejected"


def sync_after_commit(sender: Celery) -> EndpointHook:
    """The hook the API gives registry.service in cluster mode: sync once committed."""

    def hook(session: Session, team_id: int, name: str) -> None:
        send_after_commit(session, sender, SYNC_TASK, team_id, name)

    return hook
