"""Where the operator reports status changes besides the custom resource: the Tailor API.

The API mirrors them into its database (job state, reason, conditions). The sink is
injected through kopf's memo, so tests pass a `RecordingSink`.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

log = logging.getLogger(__name__)


class StatusSink(Protocol):
    """Receives every phase change of a Tailor resource.

    `phase` is the resource's status.phase (FineTuneJob: Queued, Suspended, Running,
    Succeeded, Failed, Cancelled); delivery is at-least-once.
    """

    def report(
        self,
        kind: str,
        namespace: str,
        name: str,
        job_id: str | None,
        phase: str,
        reason: str | None,
        conditions: list[dict[str, Any]],
        url: str | None = None,
    ) -> None:
        """Record one change; raise if it could not be delivered (the caller retries).

        `url` is an InferenceEndpoint's in-cluster URL (status.url), where the gateway
        forwards its team's calls."""


class SinkUnavailable(RuntimeError):
    """The status could not be delivered; worth retrying later."""


@dataclass
class HttpStatusSink:
    """POSTs a job's status to `{api_url}/v1/internal/jobs/{job_id}/status`, an endpoint's
    to `{api_url}/v1/internal/endpoints/{namespace}/{name}/status` (with its `url`).

    Body: `{"phase", "reason", "conditions"}` (and `url`); auth: `Bearer $TAILOR_OPERATOR_TOKEN`.
    Other resources without a job id (teams, an endpoint with no URL yet) have no row to
    update and are skipped.
    """

    api_url: str
    token: str | None = None
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls, api_url: str) -> HttpStatusSink:
        """A sink for the API at `api_url`, with the token from TAILOR_OPERATOR_TOKEN."""
        return cls(api_url=api_url, token=os.environ.get("TAILOR_OPERATOR_TOKEN") or None)

    def report(
        self,
        kind: str,
        namespace: str,
        name: str,
        job_id: str | None,
        phase: str,
        reason: str | None,
        conditions: list[dict[str, Any]],
        url: str | None = None,
    ) -> None:
        """Deliver one change; 5xx and network errors raise SinkUnavailable."""
        body: dict[str, Any] = {"phase": phase, "reason": reason, "conditions": conditions}
        api = self.api_url.rstrip("/")
        if job_id is not None:
            target = f"{api}/v1/internal/jobs/{job_id}/status"
        elif kind == "InferenceEndpoint" and url:
            target = f"{api}/v1/internal/endpoints/{namespace}/{name}/status"
            body["url"] = url
        else:
            return
        self._post(kind, namespace, name, target, body)

    def _post(self, kind: str, namespace: str, name: str, url: str, body: dict[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise SinkUnavailable(f"{kind} {namespace}/{name}: {url} unreachable: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise SinkUnavailable(
                f"{kind} {namespace}/{name}: {url} answered {response.status_code}"
            )
        if response.status_code >= 400:
            # A 4xx will not heal by retrying (unknown job, bad token): say so and move on.
            log.error("status of %s %s/%s rejected by the API: %s %s", kind, namespace, name,
                      response.status_code, response.text[:500])  # fmt: skip


class LogSink:
    """Logs the changes; used when no API URL is configured (an operator on its own)."""

    def report(
        self,
        kind: str,
        namespace: str,
        name: str,
        job_id: str | None,
        phase: str,
        reason: str | None,
        conditions: list[dict[str, Any]],
        url: str | None = None,
    ) -> None:
        """Log one change."""
        log.info("%s %s/%s (job %s): %s %s", kind, namespace, name, job_id, phase, reason or "")


@dataclass(frozen=True)
class Report:
    """One call a RecordingSink received."""

    kind: str
    namespace: str
    name: str
    job_id: str | None
    phase: str
    reason: str | None
    conditions: list[dict[str, Any]]
    url: str | None = None


@dataclass
class RecordingSink:
    """Keeps every report in memory (thread-safe: kopf runs sync handlers in threads)."""

    reports: list[Report] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def report(
        self,
        kind: str,
        namespace: str,
        name: str,
        job_id: str | None,
        phase: str,
        reason: str | None,
        conditions: list[dict[str, Any]],
        url: str | None = None,
    ) -> None:
        """Record one change."""
        with self._lock:
            self.reports.append(
                Report(kind, namespace, name, job_id, phase, reason, list(conditions), url)
            )

    def phases(self, name: str) -> list[str]:
        """The phases reported for one resource, in order, repeats collapsed.

        Delivery is at-least-once (a handler may run again after a conflict or a restart),
        so the same phase can arrive twice in a row; the API treats that as one change.
        """
        with self._lock:
            phases = [r.phase for r in self.reports if r.name == name]
        return [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
