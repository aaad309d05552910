"""What every handler needs, carried in kopf's memo: config, cluster client, status sink.

Tests inject their own (`kopf.Memo(config=..., cluster=..., sink=RecordingSink())`);
in a real deployment `configure` builds them from the config file and environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import kopf
from pydantic import ValidationError

from tailor_operator.config import OperatorConfig, get_config
from tailor_operator.kubeapi import Cluster
from tailor_operator.resources import GROUP
from tailor_operator.sink import HttpStatusSink, LogSink, StatusSink

log = logging.getLogger(__name__)

FINALIZER = f"{GROUP}/cleanup"


@dataclass(frozen=True)
class Runtime:
    """The operator's collaborators, as one typed value."""

    config: OperatorConfig
    cluster: Cluster
    sink: StatusSink


def configure(settings: kopf.OperatorSettings, memo: MutableMapping[str, Any]) -> None:
    """Fill the memo with what tests did not inject, and set kopf's persistence."""
    config = memo.get("config") or get_config()
    memo["config"] = config
    if memo.get("cluster") is None:
        memo["cluster"] = Cluster.connect(config.kubeServer, os.environ.get("TAILOR_KUBE_TOKEN"))
    if memo.get("sink") is None:
        memo["sink"] = HttpStatusSink.from_env(config.apiUrl) if config.apiUrl else LogSink()
    settings.persistence.finalizer = FINALIZER
    # Progress and diff-base in annotations: the status schema stays fully structural.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # Kubernetes events for problems only
    # The API server ends each watch after this long; kopf re-lists, and every re-listed
    # FineTuneJob gets a chance to re-send a status the Tailor API has not acknowledged.
    settings.watching.server_timeout = 300


def login(memo: MutableMapping[str, Any], **kwargs: Any) -> kopf.ConnectionInfo | None:
    """Connect to `kubeServer` when configured, else the client's in-cluster/kubeconfig login."""
    config: OperatorConfig = memo.get("config") or get_config()
    if config.kubeServer:
        token = os.environ.get("TAILOR_KUBE_TOKEN")
        return kopf.ConnectionInfo(
            server=config.kubeServer, token=token, scheme="Bearer" if token else None
        )
    return kopf.login_via_client(**kwargs)


def runtime(memo: MutableMapping[str, Any]) -> Runtime:
    """The typed collaborators from kopf's memo."""
    return Runtime(config=memo["config"], cluster=memo["cluster"], sink=memo["sink"])


def namespaced(namespace: str | None) -> str:
    """The namespace of a namespaced resource (kopf types it optional for cluster ones)."""
    if not namespace:
        raise kopf.PermanentError("a namespaced resource arrived without a namespace")
    return namespace


def report(
    rt: Runtime,
    kind: str,
    namespace: str,
    name: str,
    job_id: str | None,
    status: dict[str, Any],
) -> bool:
    """Tell the sink about a status; False (logged) when it could not be delivered.

    The reason carries the message too (`InvalidSpec: dataset ds-1 not found`): the API
    shows it to people as the job's error.
    """
    phase = status.get("phase")
    if not phase:
        return False
    reason, message = status.get("reason"), status.get("message")
    if reason and message:
        reason = f"{reason}: {message}"[:2000]
    try:
        conditions = list(status.get("conditions") or [])
        url = status.get("url")
        rt.sink.report(kind, namespace, name, job_id, phase, reason, conditions, url=url)
    except Exception as exc:  # the sink is outside the cluster: never let it break a handler
        log.warning("could not report %s %s/%s %s: %s", kind, namespace, name, phase, exc)
        return False
    return True


def describe_invalid(exc: ValidationError) -> str:
    """A one-line summary of spec errors: each field path and what is wrong with it."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "spec"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
