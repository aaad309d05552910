"""Talking to Kubernetes: connecting, team namespaces, Tailor's custom resources and their errors.

Fine-tunes (FineTuneJob) and endpoints (InferenceEndpoint) are custom resources in the
team's namespace; the operator turns them into workloads. The `kubernetes` client (the
`k8s` extra) is imported only when a call is made, so the embedded default never needs it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tailor.config import Settings

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

GROUP = "tailor.dev"
VERSION = "v1alpha1"


@dataclass(frozen=True)
class CustomKind:
    """One of Tailor's custom resource kinds."""

    kind: str
    plural: str

    @property
    def api_version(self) -> str:
        """The manifest's `apiVersion`."""
        return f"{GROUP}/{VERSION}"


FINETUNE_JOB = CustomKind("FineTuneJob", "finetunejobs")
INFERENCE_ENDPOINT = CustomKind("InferenceEndpoint", "inferenceendpoints")
TEAM = CustomKind("Team", "teams")  # cluster-scoped


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


def team_namespace(settings: Settings, team_slug: str) -> str:
    """The team's namespace (the operator's Team handler creates it with its queues)."""
    return f"{settings.kubernetes_namespace_prefix}{team_slug}"


def manifest(
    kind: CustomKind, name: str, namespace: str, labels: dict[str, str], spec: dict[str, Any]
) -> dict[str, Any]:
    """A custom resource of `kind`, part of Tailor."""
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "tailor", **labels},
        },
        "spec": spec,
    }


class Rejected(RuntimeError):
    """The cluster refused the resource; sending it again unchanged cannot help."""


def create(api: ApiClient, kind: CustomKind, body: dict[str, Any]) -> bool:
    """Create the resource; False when it exists already (a redelivered task)."""
    return apply(api, kind, body, update=False) == "created"


def apply(api: ApiClient, kind: CustomKind, body: dict[str, Any], *, update: bool = True) -> str:
    """Create the resource, or (`update`) merge its labels and spec into the existing one:
    "created", "updated", or "exists" (left as it was)."""
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

    custom = CustomObjectsApi(api)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    try:
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, kind.plural, body)
            return "created"
        except ApiException as exc:
            if exc.status != 409:
                raise
        if not update:
            return "exists"
        patch = {"metadata": {"labels": body["metadata"]["labels"]}, "spec": body["spec"]}
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, kind.plural, name, patch)
        return "updated"
    except ApiException as exc:
        if _refused(exc):
            raise Rejected(rejection(exc, kind, namespace)) from exc
        raise


def delete(api: ApiClient, kind: CustomKind, namespace: str | None, name: str) -> bool:
    """Delete the resource (the operator's finaliser cleans up); False if already gone.

    `namespace` None: a cluster-scoped kind (a Team).
    """
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

    custom = CustomObjectsApi(api)
    try:
        if namespace is None:
            custom.delete_cluster_custom_object(GROUP, VERSION, kind.plural, name)
        else:
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, kind.plural, name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _refused(exc: Any) -> bool:
    # A 4xx other than throttling is the request's own fault; anything else may pass.
    return exc.status is not None and 400 <= exc.status < 500 and exc.status != 429


def rejection(exc: Exception, kind: CustomKind, namespace: str) -> str:
    """Why the cluster refused a write of `kind` in `namespace`, with the fix."""
    status = getattr(exc, "status", None)
    try:
        detail = json.loads(getattr(exc, "body", None) or "{}").get("message")
    except ValueError:
        detail = None
    detail = detail or getattr(exc, "reason", "") or str(exc)
    if status == 404:
        return (
            f"namespace {namespace} or the {kind.kind} CRD does not exist: create the team's "
            f"Team resource and install the chart's CRDs ({detail})"
        )
    if status in (401, 403):
        return f"the worker may not write {kind.kind}s in {namespace}: check its RBAC ({detail})"
    return f"the cluster rejected the {kind.kind} ({status}): {detail}"


def describe(exc: Exception, kind: CustomKind) -> str:
    """A failed call to the cluster in a few words (its status, or the connection error)."""
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return f"the API may not delete {kind.kind}s ({status}): check its RBAC"
    return f"{status} {getattr(exc, 'reason', '')}".strip() if status else str(exc)
