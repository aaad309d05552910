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

The builders are pure; talking to the cluster (and its errors) is `tailor.k8s`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.models import AdapterVersion, Endpoint, Team
from tailor.errors import InvalidInput, NotFound
from tailor.k8s import INFERENCE_ENDPOINT, Rejected, apply, delete, manifest, team_namespace
from tailor.queue import send_after_commit
from tailor.services.base_models import service as catalog
from tailor.services.endpoints.service import VLLM_GPUS, EndpointHook
from tailor.stages.serve.spec import AdapterRef, EndpointSpec

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

SYNC_TASK = "tailor.endpoint.sync"


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
        context_tokens=endpoint.context_tokens if endpoint.context_enabled else 0,
    )


def endpoint_resource(name: str, namespace: str, spec: EndpointSpec) -> dict[str, Any]:
    """The InferenceEndpoint manifest of an endpoint (named after it, in the team namespace)."""
    body: dict[str, Any] = spec.model_dump(mode="json")
    if spec.backend == "vllm":
        body["resources"] = {"gpus": VLLM_GPUS}
    return manifest(INFERENCE_ENDPOINT, name, namespace, {"tailor.dev/team": spec.team}, body)


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
    namespace, body = desired
    if body is None:
        return "deleted" if delete(api, INFERENCE_ENDPOINT, namespace, name) else "absent"
    try:
        return apply(api, INFERENCE_ENDPOINT, body)
    except Rejected as exc:
        log.error("endpoint %s/%s not synced to the cluster: %s", namespace, name, exc)
        return "rejected"


def record_backend(
    session: Session, settings: Settings, namespace: str, name: str, url: str
) -> Endpoint:
    """Keep where endpoint `name` of the team owning `namespace` is served (the operator's
    report of its InferenceEndpoint's `status.url`): the gateway forwards there."""
    prefix = settings.kubernetes_namespace_prefix
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"url {url!r} is not an http(s) URL")
    slug = namespace.removeprefix(prefix) if namespace.startswith(prefix) else None
    endpoint = session.scalar(
        select(Endpoint).join(Team).where(Team.slug == slug, Endpoint.name == name)
    )
    if endpoint is None:
        raise NotFound(f"endpoint {namespace}/{name} not found")
    endpoint.backend_url = url.rstrip("/")
    session.flush()
    return endpoint


def sync_after_commit(sender: Celery) -> EndpointHook:
    """The hook the API gives registry.service in cluster mode: sync once committed."""

    def hook(session: Session, team_id: int, name: str) -> None:
        send_after_commit(session, sender, SYNC_TASK, team_id, name)

    return hook
