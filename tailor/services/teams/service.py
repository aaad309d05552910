"""Team and membership operations; the caller's transaction commits them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tailor import audit
from tailor.config import JOB_STALE_AFTER_S
from tailor.db.models import (
    Adapter,
    Dataset,
    Endpoint,
    Job,
    JobState,
    Membership,
    Role,
    Team,
    User,
)
from tailor.errors import Conflict, Forbidden, InvalidInput, NotFound
from tailor.jobs import service as jobs
from tailor.jobs.workers import is_alive
from tailor.pagination import paginate
from tailor.services.teams.purge import purge_leftovers, purge_team
from tailor.services.teams.schemas import (
    MemberCreate,
    MemberOut,
    MemberUpdate,
    TeamCreate,
    TeamSeed,
    TeamUpdate,
)
from tailor.storage import ObjectStore
from tailor.tenancy import Principal, TeamAccess, check_can_grant

# Called with the team's slug in the transaction that changed it (cluster mode: sync its
# Team resource once committed, see tailor.services.teams.sync).
TeamHook = Callable[[Session, str], None]


def _changed(session: Session, hook: TeamHook | None, slug: str) -> None:
    if hook is not None:
        hook(session, slug)


def create_team(
    session: Session,
    principal: Principal,
    body: TeamCreate,
    store: ObjectStore,
    workspace: Path,
    on_change: TeamHook | None = None,
) -> Team:
    """Create a team owned by the caller; nothing a deleted team left under its slug remains."""
    principal.require_scope("write")
    if principal.token_team_id is not None:
        raise Forbidden("a team-bound token cannot create teams")
    if session.scalar(select(Team).where(Team.slug == body.slug)):
        raise Conflict(f"team slug '{body.slug}' is taken: choose another")
    purge_leftovers(store, workspace, body.slug)
    team = Team(slug=body.slug, name=body.name)
    session.add(team)
    session.flush()
    session.add(Membership(team_id=team.id, user_id=principal.user_id, role=Role.owner))
    audit.record(session, principal, "team.create", team_id=team.id, resource=f"teams/{team.slug}")
    _changed(session, on_change, team.slug)
    return team


def seed_team(
    session: Session,
    actor: str,
    slug: str,
    body: TeamSeed,
    store: ObjectStore,
    workspace: Path,
    on_change: TeamHook | None = None,
) -> tuple[Team, bool]:
    """Create the team the chart declares, or bring its name and quotas in line; (team, created).

    Seeded teams have no owner: platform admins manage them and add their members. `actor`
    names the platform component (or admin) in the audit log.
    """
    team = session.scalar(select(Team).where(Team.slug == slug).with_for_update())
    created = team is None
    if team is None:
        purge_leftovers(store, workspace, slug)
        team = Team(slug=slug, name=body.name)
        session.add(team)
    team.name, team.gpu_quota = body.name, body.gpu_quota
    team.cluster_quota = body.cluster_quota.model_dump(exclude_none=True)
    session.flush()
    audit.record(
        session,
        None,
        "team.seed",
        team_id=team.id,
        resource=f"teams/{slug}",
        detail={"by": actor, "created": created, **body.model_dump(exclude_none=True)},
    )
    _changed(session, on_change, slug)
    return team, created


def list_teams(
    session: Session, principal: Principal, cursor: str | None, limit: int
) -> tuple[Sequence[Team], str | None]:
    """Teams the caller can see (all of them for a platform admin)."""
    stmt = select(Team)
    if principal.token_team_id is not None:
        stmt = stmt.where(Team.id == principal.token_team_id)
    if not principal.platform_admin:
        mine = select(Membership.team_id).where(Membership.user_id == principal.user_id)
        stmt = stmt.where(Team.id.in_(mine))
    return paginate(session, stmt, Team.id, cursor, limit)


def update_team(
    session: Session, access: TeamAccess, body: TeamUpdate, on_change: TeamHook | None = None
) -> Team:
    """Rename a team or (platform admins only) change its GPU and cluster quota."""
    team = access.team
    quota = body.gpu_quota is not None or body.cluster_quota is not None
    if quota and not access.principal.platform_admin:
        raise Forbidden("only a platform admin can change a team's GPU or cluster quota")
    if body.gpu_quota is not None:
        team.gpu_quota = body.gpu_quota
    if body.cluster_quota is not None:
        team.cluster_quota = body.cluster_quota.model_dump(exclude_none=True)
    if body.name is not None:
        team.name = body.name
    if body.telemetry_keeps_code is not None:
        team.telemetry_keeps_code = body.telemetry_keeps_code
    audit.record(
        session,
        access.principal,
        "team.update",
        team_id=team.id,
        resource=f"teams/{team.slug}",
        detail=body.model_dump(exclude_none=True),
    )
    _changed(session, on_change, team.slug)
    return team


def _holdings(session: Session, team_id: int) -> dict[str, int]:
    """What deleting the team would lose: harvested datasets (one whose harvest is running,
    failed or was cancelled holds nothing yet), adapters and endpoints."""
    harvested = (
        select(func.count())
        .select_from(Dataset)
        .join(Job, Job.id == Dataset.job_id)
        .where(Dataset.team_id == team_id, Job.state == JobState.succeeded)
    )
    counts = {"datasets": session.scalar(harvested) or 0}
    for label, model in (("adapters", Adapter), ("endpoints", Endpoint)):
        stmt = select(func.count()).select_from(model).where(model.team_id == team_id)
        counts[label] = session.scalar(stmt) or 0
    return {label: n for label, n in counts.items() if n}


def delete_team(
    session: Session,
    access: TeamAccess,
    store: ObjectStore,
    workspace: Path,
    stale_after_s: float = JOB_STALE_AFTER_S,
    confirm: str | None = None,
    on_change: TeamHook | None = None,
) -> None:
    """Delete a team, everything registered in it and everything it stored.

    A team that still holds datasets, adapters or endpoints is deleted only when `confirm`
    repeats its slug (409 otherwise, with the counts): on the cluster the deletion also
    removes its namespace with every endpoint serving there. Its queued jobs, and running
    ones whose worker is gone, are cancelled; a job that a live worker runs refuses the
    deletion (409, naming it): the worker would go on writing under the team's prefix after
    the purge. Objects and local caches go before the commit, so a store that cannot be
    emptied leaves the team in place, to delete again.
    """
    team = access.team
    held = _holdings(session, team.id)
    if held and confirm != team.slug:
        what = ", ".join(f"{n} {label}" for label, n in held.items())
        raise Conflict(
            f"team '{team.slug}' still has {what}; deleting it deletes them (and on the cluster "
            f"its namespace): repeat the slug to confirm (DELETE /v1/teams/{team.slug}"
            f"?confirm={team.slug})",
            holdings=held,
        )
    running = []
    unfinished = select(Job).where(
        Job.team_id == team.id, Job.state.in_([JobState.queued, JobState.running])
    )
    for job in session.scalars(unfinished.with_for_update()).all():
        local = job.executor == "local"
        if local and (
            job.state == JobState.queued
            or not is_alive(job.worker, job.heartbeat_at, stale_after_s)
        ):
            jobs.request_cancel(session, access, job, stale_after_s)
        else:
            running.append(job.uid)
    if running:
        raise Conflict(
            f"team '{team.slug}' has jobs still running: {', '.join(sorted(running))}; cancel "
            f"them (POST /v1/teams/{team.slug}/jobs/{{id}}/cancel) and delete the team once "
            "they have ended",
            jobs=sorted(running),
        )
    uids = session.scalars(select(Job.uid).where(Job.team_id == team.id)).all()
    purge_team(store, workspace, team, uids)
    audit.record(
        session, access.principal, "team.delete", team_id=None, resource=f"teams/{team.slug}"
    )
    session.delete(team)
    _changed(session, on_change, team.slug)


def _member_out(m: Membership, u: User) -> MemberOut:
    return MemberOut(
        user_id=u.id,
        email=u.email,
        name=u.name,
        role=m.role,
        machine=u.is_machine,
        created_at=m.created_at,
    )


def list_members(
    session: Session, access: TeamAccess, cursor: str | None, limit: int
) -> tuple[list[MemberOut], str | None]:
    """Members of the team, oldest first."""
    stmt = select(Membership).where(Membership.team_id == access.team_id)
    rows, nxt = paginate(session, stmt, Membership.id, cursor, limit)
    users = {
        u.id: u for u in session.scalars(select(User).where(User.id.in_([m.user_id for m in rows])))
    }
    return [_member_out(m, users[m.user_id]) for m in rows], nxt


def add_member(session: Session, access: TeamAccess, body: MemberCreate) -> MemberOut:
    """Add a person by e-mail with a role no stronger than the caller's."""
    check_can_grant(access, body.role)
    email = body.email.lower()
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, name=body.name)
        session.add(user)
        session.flush()
    elif user.is_machine:
        # A machine token's principal belongs to the one team its token was issued in.
        raise InvalidInput(f"{email} is a machine token, not a person", field="email")
    elif _membership(session, access, user.id, missing_ok=True):
        raise Conflict(f"{email} is already a member of team '{access.team.slug}'")
    member = Membership(team_id=access.team_id, user_id=user.id, role=body.role)
    session.add(member)
    session.flush()
    audit.record(
        session,
        access.principal,
        "member.add",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/members/{user.id}",
        detail={"email": email, "role": body.role.value},
    )
    return _member_out(member, user)


def get_member(session: Session, access: TeamAccess, user_id: int) -> MemberOut:
    """One member of the team."""
    member = _membership(session, access, user_id)
    assert member is not None
    return _member_out(member, session.get_one(User, user_id))


def update_member(
    session: Session, access: TeamAccess, user_id: int, body: MemberUpdate
) -> MemberOut:
    """Change a member's role, keeping at least one owner."""
    member = _membership(session, access, user_id)
    assert member is not None
    check_can_grant(access, body.role)
    check_can_grant(access, member.role)
    if member.role == Role.owner and body.role != Role.owner:
        _keep_an_owner(session, access)
    member.role = body.role
    audit.record(
        session,
        access.principal,
        "member.update",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/members/{user_id}",
        detail={"role": body.role.value},
    )
    return _member_out(member, session.get_one(User, user_id))


def remove_member(session: Session, access: TeamAccess, user_id: int) -> None:
    """Remove a member, keeping at least one owner."""
    member = _membership(session, access, user_id)
    assert member is not None
    check_can_grant(access, member.role)
    if member.role == Role.owner:
        _keep_an_owner(session, access)
    session.delete(member)
    audit.record(
        session,
        access.principal,
        "member.remove",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/members/{user_id}",
    )


def _membership(
    session: Session, access: TeamAccess, user_id: int, missing_ok: bool = False
) -> Membership | None:
    member = session.scalar(
        select(Membership).where(
            Membership.team_id == access.team_id, Membership.user_id == user_id
        )
    )
    if member is None and not missing_ok:
        raise NotFound(f"user {user_id} is not a member of team '{access.team.slug}'")
    return member


def _keep_an_owner(session: Session, access: TeamAccess) -> None:
    owners = session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.team_id == access.team_id, Membership.role == Role.owner)
    )
    if (owners or 0) <= 1:
        raise Conflict("a team needs at least one owner: make someone else owner first")


def set_publish_policy(session: Session, access: TeamAccess, policy: dict[str, Any]) -> Team:
    """Replace the team's publish gate (an empty policy is the default gate)."""
    access.team.publish_policy = policy
    audit.record(
        session,
        access.principal,
        "team.publish_policy",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}",
        detail=policy,
    )
    return access.team
