"""InferenceEndpoint reconciliation: apply the Deployment/Service/HPA, mirror readiness."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
import urllib3
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from tailor_operator import serving, status
from tailor_operator.kubeapi import as_kopf_error
from tailor_operator.pods import UnknownGpuType
from tailor_operator.resources import API_VERSION, InferenceEndpointSpec
from tailor_operator.runtime import Runtime, describe_invalid, report

KIND = "InferenceEndpoint"
_API_ERRORS = (ApiException, urllib3.exceptions.HTTPError)


def apply(
    rt: Runtime,
    name: str,
    namespace: str,
    uid: str,
    spec: Mapping[str, Any],
    phase: str | None = None,
) -> dict[str, Any]:
    """Create or update the endpoint's objects; the status patch (URL and spec hash).

    Once the resource has a `phase` (an update, or a resume after an operator restart), its
    URL is reported again with it, so that a report lost while the API was away is made again;
    a new endpoint's first report is its Deployment's (sync_from_deployment).
    """
    try:
        ep = serving.Endpoint(
            name, namespace, uid, InferenceEndpointSpec.model_validate(dict(spec))
        )
        manifests = serving.build_serving(ep, rt.config)
    except ValidationError as exc:
        raise kopf.PermanentError(f"{KIND} {namespace}/{name}: {describe_invalid(exc)}") from exc
    except (UnknownGpuType, serving.UnsupportedEndpoint) as exc:
        raise kopf.PermanentError(f"{KIND} {namespace}/{name}: {exc}") from exc
    rt.cluster.ensure_all(manifests, immutable=set())
    if not ep.spec.autoscaling.enabled:
        hpa = serving.workload_name(name)
        _delete(rt, "autoscaling/v2", "HorizontalPodAutoscaler", namespace, hpa)
    # The phase is the Deployment's to tell (sync_from_deployment): one writer, no races.
    status = {"url": serving.url(ep), "specHash": serving.spec_hash(ep)}
    if phase:
        report(rt, KIND, namespace, name, None, {"phase": phase, "url": status["url"]})
    return status


def _owner(body: Mapping[str, Any]) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion") == API_VERSION:
            return str(ref["name"])
    return None


def sync_from_deployment(rt: Runtime, deployment: Mapping[str, Any]) -> None:
    """Mirror a Deployment's readiness onto its InferenceEndpoint (and the sink on change)."""
    name = _owner(deployment)
    namespace = deployment.get("metadata", {}).get("namespace")
    if not name or not namespace:
        return
    try:
        owner = rt.cluster.get(API_VERSION, KIND, namespace, name)
        if owner is None or owner.get("metadata", {}).get("deletionTimestamp"):
            return
        previous = owner.get("status") or {}
        wanted = int((deployment.get("spec") or {}).get("replicas") or 0)
        observed = status.observe_deployment(dict(deployment), wanted)
        new = status.endpoint_status(observed, previous, dict(deployment), status.now())
        if not status.changed(previous, new):
            return
        rt.cluster.patch(API_VERSION, KIND, namespace, name, {"status": new}, "status")
    except _API_ERRORS as exc:
        raise as_kopf_error(exc, f"updating {KIND} {namespace}/{name} status") from exc
    if previous.get("phase") != new["phase"]:
        # With its URL: the platform learns where the gateway forwards the team's calls.
        report(rt, KIND, namespace, name, None, {**new, "url": previous.get("url")})


def _delete(rt: Runtime, api_version: str, kind: str, namespace: str, name: str) -> None:
    try:
        rt.cluster.delete(api_version, kind, namespace, name)
    except _API_ERRORS as exc:
        raise as_kopf_error(exc, f"deleting {kind} {namespace}/{name}") from exc


def delete(rt: Runtime, name: str, namespace: str) -> None:
    """Remove the endpoint's objects (already gone is fine)."""
    workload = serving.workload_name(name)
    _delete(rt, "autoscaling/v2", "HorizontalPodAutoscaler", namespace, workload)
    _delete(rt, "apps/v1", "Deployment", namespace, workload)
    _delete(rt, "v1", "Service", namespace, workload)
    _delete(rt, "v1", "ConfigMap", namespace, serving.configmap_name(name))
