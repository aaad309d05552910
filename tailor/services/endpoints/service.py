"""Publishing adapter versions at a team's endpoints; the caller's transaction commits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from tailor import audit
from tailor.config import Settings
from tailor.db.models import Adapter, AdapterVersion, Endpoint
from tailor.errors import Conflict
from tailor.services.adapters.service import get_version
from tailor.services.base_models import service as catalog
from tailor.services.costs import service as costs
from tailor.services.endpoints.schemas import (
    ContextSettings,
    EndpointCreate,
    EndpointOut,
    Promote,
)
from tailor.tenancy import TeamAccess, owned, team_select

# (team's publish policy, version's evaluation) -> reasons it fails; empty = passes.
GateCheck = Callable[[dict[str, Any], dict[str, Any]], list[str]]


# Told (session, team id, endpoint name) after an endpoint changed; cluster mode passes
# tailor.services.endpoints.sync.sync_after_commit, which applies the InferenceEndpoint.
EndpointHook = Callable[[Session, int, str], None]


class BaseModelMismatch(Conflict):
    """A version is on another base model than the serving pool it would be published to."""

    type_slug = "base-model-mismatch"
    title = "Version is on another base model"


# GPUs per replica of a vLLM endpoint: vLLM serves on a GPU (more, tensor parallel, is a
# cluster-side edit). The InferenceEndpoint asks for as many (`sync.endpoint_resource`).
VLLM_GPUS = 1


def pool_base(settings: Settings) -> str | None:
    """The catalog base the shared serving pool runs, or None where each endpoint has its own.

    On one machine the gateway serves one base (`TAILOR_SERVE_BASE_MODEL`) for every
    endpoint; on a cluster each InferenceEndpoint's pods load their version's base.
    """
    return settings.serve_base_model if settings.executor == "local" else None


def _check_serves(ref: str, version: AdapterVersion, serves: str) -> None:
    """Refuse a version on another base than the one its serving pool runs."""
    if version.base_model != serves:
        raise BaseModelMismatch(
            f"{ref} is on base model '{version.base_model}' but its serving pool serves "
            f"'{serves}': an adapter only works on the base it was trained on. Publish a "
            f"version trained on '{serves}', or transfer this one to it first",
            version_base=version.base_model,
            served_base=serves,
        )


def _check_gate(
    access: TeamAccess, version: AdapterVersion, override: bool, gate: GateCheck | None
) -> None:
    if gate is None:
        return
    # Every team has a gate: one that set no policy gets the defaults
    # (tailor.services.endpoints.gate).
    reasons = gate(access.team.publish_policy, version.evaluation)
    if reasons and not override:
        raise Conflict(
            "the team's publish gate refuses this version: "
            + "; ".join(reasons)
            + " (set override_gate to publish anyway; it is audited)",
            reasons=reasons,
        )


def publish(
    session: Session,
    access: TeamAccess,
    body: EndpointCreate,
    gate: GateCheck | None = None,
    on_change: EndpointHook | None = None,
    *,
    serves: str | None,
    gpu_type: str | None = None,
) -> Endpoint:
    """Create an endpoint serving a version (default the latest) of an adapter.

    `serves` is the base of the shared serving pool (`pool_base`); None on a cluster, where
    the endpoint's own pods run on `gpu_type` and are paid for from now on.
    """
    _adapter, version = get_version(session, access, body.adapter, body.version)
    if session.scalar(team_select(Endpoint, access).where(Endpoint.name == body.name)):
        raise Conflict(f"endpoint '{body.name}' exists: promote a version onto it instead")
    if serves is None:  # the endpoint's own pods load the base: the catalog must know it
        catalog.resolve(session, version.base_model)
    else:
        _check_serves(f"{body.adapter}@{version.version}", version, serves)
    _check_gate(access, version, body.override_gate, gate)
    ep = Endpoint(
        team_id=access.team_id,
        name=body.name,
        version_id=version.id,
        backend=body.backend,
        replicas=body.replicas,
        gate_overridden=body.override_gate,
    )
    session.add(ep)
    session.flush()
    # Its own replicas on a cluster (vLLM on GPUs); the shared in-process pool costs no GPUs.
    gpus = VLLM_GPUS if serves is None and ep.backend == "vllm" else 0
    gpu_type = (access.team.cluster_quota or {}).get("gpuType") or gpu_type
    costs.endpoint_started(session, access.team_id, ep.name, ep.replicas, gpus, gpu_type)
    audit.record(
        session,
        access.principal,
        "endpoint.publish",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/endpoints/{ep.name}",
        detail={
            "adapter": body.adapter,
            "version": version.version,
            "override_gate": body.override_gate,
        },
    )
    if on_change is not None:
        on_change(session, access.team_id, ep.name)
    return ep


def get_endpoint(session: Session, access: TeamAccess, name: str) -> Endpoint:
    """One endpoint of the team, or 404."""
    return owned(session, Endpoint, access, "endpoint", name=name)


def promote(
    session: Session,
    access: TeamAccess,
    name: str,
    body: Promote,
    gate: GateCheck | None = None,
    on_change: EndpointHook | None = None,
    *,
    serves: str | None,
) -> Endpoint:
    """Point an endpoint at another version of the same adapter (one call, audited).

    The target must be on the base the endpoint's pool serves: the shared pool's
    (`serves`), else the one the endpoint's pods run now.
    """
    ep = get_endpoint(session, access, name)
    current = session.get_one(AdapterVersion, ep.version_id)
    adapter = session.get_one(Adapter, current.adapter_id)
    _, target = get_version(session, access, adapter.name, body.version)
    _check_serves(f"{adapter.name}@{target.version}", target, serves or current.base_model)
    _check_gate(access, target, body.override_gate, gate)
    ep.previous_version_id, ep.version_id = current.id, target.id
    ep.gate_overridden = body.override_gate
    audit.record(
        session,
        access.principal,
        "endpoint.promote",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/endpoints/{name}",
        detail={"from": current.version, "to": target.version, "override_gate": body.override_gate},
    )
    if on_change is not None:
        on_change(session, access.team_id, name)
    return ep


def rollback(
    session: Session, access: TeamAccess, name: str, on_change: EndpointHook | None = None
) -> Endpoint:
    """Swap an endpoint back to the version it served before the last promotion."""
    ep = get_endpoint(session, access, name)
    if ep.previous_version_id is None:
        raise Conflict(f"endpoint '{name}' has no previous version to roll back to")
    ep.version_id, ep.previous_version_id = ep.previous_version_id, ep.version_id
    audit.record(
        session,
        access.principal,
        "endpoint.rollback",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/endpoints/{name}",
    )
    if on_change is not None:
        on_change(session, access.team_id, name)
    return ep


def set_context(
    session: Session,
    access: TeamAccess,
    name: str,
    body: ContextSettings,
    on_change: EndpointHook | None = None,
) -> Endpoint:
    """Turn an endpoint's repository context on or off, or change its token budget (audited);
    the gateway sees it with the endpoint's next lookup (the change is announced), a cluster's
    endpoint pods with their spec (`on_change` re-applies it)."""
    ep = get_endpoint(session, access, name)
    if body.enabled is not None:
        ep.context_enabled = body.enabled
    if body.tokens is not None:
        ep.context_tokens = body.tokens
    audit.record(
        session,
        access.principal,
        "endpoint.context",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/endpoints/{name}",
        detail={"enabled": ep.context_enabled, "tokens": ep.context_tokens},
    )
    if on_change is not None:
        on_change(session, access.team_id, name)
    return ep


def unpublish(
    session: Session, access: TeamAccess, name: str, on_change: EndpointHook | None = None
) -> None:
    """Delete an endpoint (its versions stay in the registry); its GPU time stops here."""
    session.delete(get_endpoint(session, access, name))
    costs.endpoint_stopped(session, access.team_id, name)
    audit.record(
        session,
        access.principal,
        "endpoint.delete",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/endpoints/{name}",
    )
    if on_change is not None:
        on_change(session, access.team_id, name)


def endpoint_out(session: Session, ep: Endpoint, url: str) -> EndpointOut:
    """Response shape of an endpoint."""
    version = session.get_one(AdapterVersion, ep.version_id)
    adapter = session.get_one(Adapter, version.adapter_id)
    previous = (
        session.get_one(AdapterVersion, ep.previous_version_id).version
        if ep.previous_version_id
        else None
    )
    return EndpointOut.of(ep, adapter.name, version.version, previous, url)


def list_endpoints(session: Session, access: TeamAccess) -> Sequence[Endpoint]:
    """The team's endpoints."""
    return session.scalars(team_select(Endpoint, access).order_by(Endpoint.id)).all()
