"""Team reconciliation: namespace, quota, isolation, Kueue queues, object-store Secret."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import kopf
import urllib3
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from tailor_operator import namespaces
from tailor_operator.kubeapi import as_kopf_error
from tailor_operator.resources import TEAM_SLUG, TeamSpec
from tailor_operator.runtime import Runtime, describe_invalid

KIND = "Team"
_API_ERRORS = (ApiException, urllib3.exceptions.HTTPError)


def _tenant(name: str, uid: str, spec: Mapping[str, Any]) -> namespaces.Tenant:
    if not re.match(TEAM_SLUG, name):
        raise kopf.PermanentError(
            f"Team name {name!r} must be a slug of at most 51 characters ({TEAM_SLUG})"
        )
    try:
        return namespaces.Tenant(name, uid, TeamSpec.model_validate(dict(spec)))
    except ValidationError as exc:
        raise kopf.PermanentError(f"Team {name}: {describe_invalid(exc)}") from exc


def _credentials(rt: Runtime) -> dict[str, str] | None:
    """The platform's object-store Secret data (the Team's namespace gets a copy)."""
    store = rt.config.objectStore
    return _secret_data(rt, store.sourceSecretNamespace, store.sourceSecretName)


def _secret_data(rt: Runtime, namespace: str, name: str) -> dict[str, str] | None:
    try:
        secret = rt.cluster.get("v1", "Secret", namespace, name)
    except _API_ERRORS as exc:
        raise as_kopf_error(exc, f"reading Secret {namespace}/{name}") from exc
    return dict(secret.get("data") or {}) if secret else None


def apply(rt: Runtime, name: str, uid: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Create or update the team's objects; the status patch."""
    tenant = _tenant(name, uid, spec)
    try:
        manifests = namespaces.build_tenancy(tenant, rt.config)
    except ValueError as exc:
        raise kopf.PermanentError(f"Team {name}: {exc}") from exc
    rt.cluster.ensure_all(manifests, immutable=set())
    _disown(rt, [m for m in manifests if "namespace" not in m["metadata"]])
    result: dict[str, Any] = {
        "namespace": namespaces.namespace_name(rt.config, name),
        "localQueue": rt.config.kueue.localQueueName if rt.config.kueue.enabled else None,
        "clusterQueue": namespaces.cluster_queue_name(rt.config, name)
        if rt.config.kueue.enabled
        else None,
    }
    data = _credentials(rt)
    if data is None:
        # Jobs cannot read the object store without it; retry until the admin adds it.
        raise kopf.TemporaryError(
            f"Team {name}: object-store Secret not found "
            f"({rt.config.objectStore.sourceSecretNamespace}/"
            f"{rt.config.objectStore.sourceSecretName}); set s3 credentials in the chart",
            delay=60,
        )
    secrets = [namespaces.build_object_store_secret(tenant, rt.config, data)]
    # The team's own token for the gateway to call its endpoint pods. Per team, so no pod
    # holds a platform-wide secret; derived from the platform's key, so re-applying writes the
    # same one (running pods read it at start). A random one (no key) is made once and kept.
    namespace = namespaces.namespace_name(rt.config, name)
    keyed = rt.config.endpointTokenKey is not None
    if keyed or _secret_data(rt, namespace, rt.config.endpointTokenSecretName) is None:
        token = namespaces.endpoint_token_for(tenant, rt.config)
        secrets.append(namespaces.build_endpoint_token_secret(tenant, rt.config, token))
    rt.cluster.ensure_all(secrets, immutable=set())
    return {**result, "phase": "Ready", "reason": "Provisioned", "message": None}


def _disown(rt: Runtime, manifests: list[dict[str, Any]]) -> None:
    """Drop the ownerReference an older operator gave the Namespace and ClusterQueue.

    Owned, they are garbage-collected whenever the Team object goes away, even when it is
    re-created at once (what Helm did on every upgrade): only `delete` may remove them.
    """
    for manifest in manifests:
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        name = manifest["metadata"]["name"]
        try:
            current = rt.cluster.get(api_version, kind, None, name)
            if current and current.get("metadata", {}).get("ownerReferences"):
                body = {"metadata": {"ownerReferences": None}}
                rt.cluster.patch(api_version, kind, None, name, body)
        except _API_ERRORS as exc:
            raise as_kopf_error(exc, f"disowning {kind} {name}") from exc


def delete(rt: Runtime, name: str) -> None:
    """Remove the team's ClusterQueue and namespace (with everything in it)."""
    targets = [
        ("kueue.x-k8s.io/v1beta1", "ClusterQueue", namespaces.cluster_queue_name(rt.config, name)),
        ("v1", "Namespace", namespaces.namespace_name(rt.config, name)),
    ]
    for api_version, kind, target in targets:
        if kind == "ClusterQueue" and not rt.config.kueue.enabled:
            continue
        try:
            rt.cluster.delete(api_version, kind, None, target)
        except _API_ERRORS as exc:
            raise as_kopf_error(exc, f"deleting {kind} {target}") from exc
