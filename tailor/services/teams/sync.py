"""Teams in cluster mode: each team in the database is a Team resource (tailor.dev/v1alpha1).

The database is the source of truth; the cluster follows it. Creating, changing and
deleting a team commit in the request's transaction and, once committed, send the
`tailor.team.sync` task (`sync_after_commit`), which reads the team as it is *now* and
creates, patches or deletes its Team; the operator turns the Team into the namespace,
queues, quota and isolation. Why a task after the commit rather than a call in the request:

- a request never half-succeeds: what the API answered is what the database holds;
- a cluster that is down delays the change instead of failing it: the task retries with
  backoff, and each run converges on the latest state, so repeats and reordering are
  harmless;
- what a lost task or a hand edit leaves behind, the periodic `tailor.team.resync` (Celery
  beat) repairs: every team in the database gets its Team re-applied, and a Team the
  database does not know is reported (logged, and counted in the result), never deleted:
  a person may have made it on purpose, and deleting it would delete a namespace. Each
  change of that set is also written to the audit log, which the admin console shows.

The builder is pure; the `kubernetes` client is imported only when a call is made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor import audit, k8s
from tailor.db.models import AuditEvent, Team
from tailor.k8s import GROUP, VERSION
from tailor.queue import send_after_commit
from tailor.services.teams.service import TeamHook

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

PLURAL = k8s.TEAM.plural
KIND = "Team"
SYNC_TASK = "tailor.team.sync"
UNKNOWN_TEAMS = "cluster.unknown_teams"  # the audit action that reports stray Teams
MANAGED_BY = "tailor-api"  # the label that says the API's sync owns the resource

# ClusterQuota field (the API's spelling) -> TeamQuota field (the CRD's).
_QUOTA_FIELDS = {
    "gpu_type": "gpuType",
    "gpu_borrowing_limit": "gpuBorrowingLimit",
    "cpu": "cpu",
    "memory": "memory",
    "pods": "pods",
}


def team_resource(team: Team) -> dict[str, Any]:
    """The Team manifest of a database team (named after its slug; cluster-scoped)."""
    quota: dict[str, Any] = {"gpus": team.gpu_quota}
    for ours, theirs in _QUOTA_FIELDS.items():
        if team.cluster_quota.get(ours) is not None:
            quota[theirs] = team.cluster_quota[ours]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": team.slug,
            "labels": {
                "app.kubernetes.io/part-of": "tailor",
                "app.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "spec": {"displayName": team.name, "quota": quota},
    }


class TeamRejected(RuntimeError):
    """The cluster refused the resource; sending it again unchanged cannot help."""


def apply(api: ApiClient, manifest: dict[str, Any]) -> str:
    """Create the Team, or bring its spec in line with the database's: "created"/"updated".

    A quota field the database leaves unset is removed (null in the merge patch), so it
    goes back to the operator's default, and a hand edit of the spec is undone.
    """
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

    custom = CustomObjectsApi(api)
    name = manifest["metadata"]["name"]
    try:
        try:
            custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, manifest)
            return "created"
        except ApiException as exc:
            if exc.status != 409:
                raise
        got = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        current = cast(dict[str, Any], got)
        if current.get("spec") == manifest["spec"] and _labelled(current, manifest):
            return "unchanged"
        quota = {theirs: None for theirs in _QUOTA_FIELDS.values()}
        quota.update(manifest["spec"]["quota"])
        patch = {
            "metadata": {"labels": manifest["metadata"]["labels"]},
            "spec": {**manifest["spec"], "quota": quota},
        }
        custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, patch)
        return "updated"
    except ApiException as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (409, 429):
            raise TeamRejected(_rejection(exc)) from exc
        raise


def _labelled(current: dict[str, Any], manifest: dict[str, Any]) -> bool:
    labels = current.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in manifest["metadata"]["labels"].items())


def remove(api: ApiClient, name: str) -> bool:
    """Delete the Team (the operator removes its namespace and queue); False if gone."""
    return k8s.delete(api, k8s.TEAM, None, name)


def _rejection(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    if status == 404:
        return "the Team CRD does not exist: install the chart's CRDs"
    if status in (401, 403):
        return "the worker may not write Teams (cluster-scoped): check its ClusterRole"
    return f"the cluster rejected the Team ({status}): {getattr(exc, 'body', '')}"


def sync_team(sessions: sessionmaker[Session], slug: str, api: ApiClient) -> str:
    """Make the cluster hold what the database says about team `slug` now.

    Returns what it did ("created", "updated", "unchanged", "deleted", "absent",
    "rejected"). An unreachable cluster raises, so the task is retried.
    """
    with sessions() as session:
        team = session.scalar(select(Team).where(Team.slug == slug))
        manifest = team_resource(team) if team is not None else None
    if manifest is None:
        return "deleted" if remove(api, slug) else "absent"
    try:
        return apply(api, manifest)
    except TeamRejected as exc:
        log.error("team %s not synced to the cluster: %s", slug, exc)
        return "rejected"


@dataclass
class Resync:
    """What one resync did: each database team's outcome, and the Teams no team explains."""

    applied: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)


def resync_teams(sessions: sessionmaker[Session], api: ApiClient) -> Resync:
    """Re-apply every database team's Team; report (never delete) Teams it does not know."""
    from kubernetes.client import CustomObjectsApi

    with sessions() as session:
        manifests = [team_resource(t) for t in session.scalars(select(Team).order_by(Team.id))]
    result = Resync()
    for manifest in manifests:
        name = manifest["metadata"]["name"]
        try:
            result.applied[name] = apply(api, manifest)
        except TeamRejected as exc:
            log.error("team %s not synced to the cluster: %s", name, exc)
            result.applied[name] = "rejected"
    known = set(result.applied)
    listed = cast(
        dict[str, Any], CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, PLURAL)
    )
    result.unknown = sorted(
        obj["metadata"]["name"]
        for obj in listed.get("items", [])
        if obj["metadata"]["name"] not in known
    )
    if result.unknown:
        log.warning(
            "Team resources with no team in the database (left as they are; create the team "
            "through the API or delete the Team with kubectl): %s",
            ", ".join(result.unknown),
        )
    with sessions.begin() as session:
        _report_unknown(session, result.unknown)
    return result


def _report_unknown(session: Session, unknown: list[str]) -> None:
    """Note in the audit log (the admin console shows it) when the set of stray Teams changes."""
    last = session.scalar(
        select(AuditEvent)
        .where(AuditEvent.action == UNKNOWN_TEAMS)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    if (last.detail.get("teams") if last else []) != unknown:
        audit.record(session, None, UNKNOWN_TEAMS, resource="teams", detail={"teams": unknown})


def sync_after_commit(sender: Celery) -> TeamHook:
    """The hook the API gives teams.service in cluster mode: sync once committed."""

    def hook(session: Session, slug: str) -> None:
        send_after_commit(session, sender, SYNC_TASK, slug)

    return hook
