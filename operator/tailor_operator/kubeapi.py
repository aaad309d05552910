"""The operator's one edge to the Kubernetes API: create, read, patch and delete manifests.

A thin generic layer over the official client's authenticated REST calls, so builders can
stay plain dicts. Errors become kopf's: TemporaryError for what may heal (conflicts,
throttling, a namespace not there yet, missing RBAC), PermanentError for what will not
(a manifest the API server rejects as invalid).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import kopf
import urllib3
from kubernetes import client as k8s
from kubernetes import config as kubeconfig
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

# Kinds the operator touches, and their REST plural.
PLURALS = {
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Service": "services",
    "Namespace": "namespaces",
    "ResourceQuota": "resourcequotas",
    "Job": "jobs",
    "JobSet": "jobsets",
    "Workload": "workloads",
    "ServiceAccount": "serviceaccounts",
    "RoleBinding": "rolebindings",
    "Pod": "pods",
    "Deployment": "deployments",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "NetworkPolicy": "networkpolicies",
    "LocalQueue": "localqueues",
    "ClusterQueue": "clusterqueues",
    "FineTuneJob": "finetunejobs",
    "InferenceEndpoint": "inferenceendpoints",
    "Team": "teams",
}
MERGE_PATCH = "application/merge-patch+json"


def resource_path(
    api_version: str, kind: str, namespace: str | None, name: str | None = None
) -> str:
    """REST path of a collection or an object (`/api/v1/...` or `/apis/<group>/...`)."""
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    ns = f"/namespaces/{namespace}" if namespace else ""
    obj = f"/{name}" if name else ""
    return f"{root}{ns}/{PLURALS[kind]}{obj}"


def as_kopf_error(exc: Exception, what: str) -> kopf.TemporaryError | kopf.PermanentError:
    """The kopf error for a failed API call: retry what may heal, give up on what will not."""
    if not isinstance(exc, ApiException):
        return kopf.TemporaryError(f"{what}: Kubernetes API unreachable ({exc})", delay=10)
    detail = _message(exc)
    if exc.status in (400, 422):
        return kopf.PermanentError(f"{what}: rejected by the API server: {detail}")
    if exc.status in (401, 403):
        return kopf.TemporaryError(
            f"{what}: forbidden ({detail}); check the operator's RBAC in the chart", delay=60
        )
    if exc.status == 404:
        return kopf.TemporaryError(f"{what}: not found yet ({detail})", delay=15)
    return kopf.TemporaryError(f"{what}: {exc.status} {detail}", delay=10)


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def _describe(manifest: dict[str, Any]) -> str:
    meta = manifest.get("metadata", {})
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{manifest.get('kind')} {where}{meta.get('name')}"


class Cluster:
    """Generic object operations on one Kubernetes API server (thread-safe)."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api

    @classmethod
    def connect(cls, server: str | None = None, token: str | None = None) -> Cluster:
        """Use `server` when given (tests, out-of-cluster), else in-cluster, else kubeconfig."""
        configuration = k8s.Configuration()
        if server:
            configuration.host = server.rstrip("/")
            if token:
                configuration.api_key = {"authorization": f"Bearer {token}"}
        else:
            try:
                kubeconfig.load_incluster_config(client_configuration=configuration)
            except kubeconfig.ConfigException:
                kubeconfig.load_kube_config(client_configuration=configuration)
        return cls(k8s.ApiClient(configuration))

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request, _request_timeout=30)
        response.read()
        text = response.data.decode() if response.data else ""
        if not 200 <= response.status <= 299:
            raise ApiException(status=response.status, reason=response.reason, body=text)
        return json.loads(text) if text else {}

    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self._call("GET", resource_path(api_version, kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None
    ) -> list[dict[str, Any]]:
        """Every object of a kind (in a namespace); none when the kind is not served."""
        try:
            found = self._call("GET", resource_path(api_version, kind, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise
        return list(found.get("items") or [])

    def list_labelled(
        self, api_version: str, kind: str, namespace: str | None, labels: dict[str, str]
    ) -> list[dict[str, Any]]:
        """The objects of a kind carrying every one of `labels` (asked of the server with a
        label selector, checked again here)."""
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        path = resource_path(api_version, kind, namespace)
        items = self._call("GET", path, query=[("labelSelector", selector)]).get("items") or []
        return [
            item
            for item in items
            if all(
                ((item.get("metadata") or {}).get("labels") or {}).get(k) == v
                for k, v in labels.items()
            )
        ]

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """POST a manifest to its collection."""
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"))
        return self._call("POST", path, manifest)

    def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch of an object (or of its status subresource)."""
        path = resource_path(api_version, kind, namespace, name)
        if subresource:
            path = f"{path}/{subresource}"
        return self._call("PATCH", path, body, MERGE_PATCH)

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        """Delete in the background (dependents too); False if it was already gone."""
        path = resource_path(api_version, kind, namespace, name)
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        try:
            self._call("DELETE", path, body)
        except ApiException as exc:
            if exc.status == 404:
                return False  # already gone: what a delete wants
            raise
        return True

    def ensure(self, manifest: dict[str, Any], update: bool = True) -> dict[str, Any]:
        """Create the object; if it exists, bring it in line (update) or leave it as is ({})."""
        try:
            return self.create(manifest)
        except ApiException as exc:
            if exc.status != 409:
                raise
        meta = manifest["metadata"]
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        if not update:
            # Left as it is, unread: the operator may create Secrets it has no right to read.
            return {}
        body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
        return self.patch(api_version, kind, meta.get("namespace"), meta["name"], body)

    def ensure_all(self, manifests: list[dict[str, Any]], immutable: set[str]) -> None:
        """`ensure` each manifest in order; kinds in `immutable` are created, never updated."""
        for manifest in manifests:
            try:
                self.ensure(manifest, update=manifest["kind"] not in immutable)
            except (ApiException, urllib3.exceptions.HTTPError) as exc:
                raise as_kopf_error(exc, f"applying {_describe(manifest)}") from exc
