"""Issuing, resolving and revoking API tokens."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from tailor import audit
from tailor.db.base import utcnow
from tailor.db.models import ApiToken, Membership, Role, User
from tailor.errors import Forbidden, InvalidInput, Unauthorized
from tailor.pagination import paginate
from tailor.security import hash_token, new_api_token, visible_prefix
from tailor.services.tokens.admins import NO_GROUP_ADMINS, GroupAdmins
from tailor.services.tokens.schemas import TokenCreate, TokenCreated, TokenOut
from tailor.tenancy import Principal, TeamAccess, check_can_grant, owned, team_select


def issue_token(
    session: Session,
    user: User,
    *,
    name: str,
    scopes: list[str],
    team_id: int | None,
    expires_at: datetime | None,
    created_by: int | None = None,
) -> tuple[ApiToken, str]:
    """Create a token row and return it with the plaintext (which is never stored).

    `created_by` is who issued it when that is not `user` itself (a machine token's issuer).
    """
    plaintext = new_api_token()
    row = ApiToken(
        user_id=user.id,
        team_id=team_id,
        name=name,
        prefix=visible_prefix(plaintext),
        token_hash=hash_token(plaintext),
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        created_by=created_by or user.id,
    )
    session.add(row)
    session.flush()
    return row, plaintext


def create_admin_token(session: Session, email: str, name: str = "bootstrap") -> str:
    """Bootstrap: ensure a platform-admin user and give it an all-scopes token."""
    email = email.lower()
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, name="admin", is_admin=True)
        session.add(user)
        session.flush()
    user.is_admin = True
    _row, plaintext = issue_token(
        session,
        user,
        name=name,
        scopes=["read", "write", "inference", "admin"],
        team_id=None,
        expires_at=None,
    )
    audit.record(
        session, None, "token.bootstrap", resource=f"users/{user.id}", detail={"email": email}
    )
    return plaintext


# Machine principals' e-mail domain: `.invalid` is reserved (RFC 2606), so no person has such
# an address and the members API refuses it.
MACHINE_DOMAIN = "machine.tailor.invalid"

# `last_used_at` is kept to this precision: every IDE completion authenticates, and a row
# write per request would serialise one user's concurrent requests on the token's row.
LAST_USED_PRECISION = timedelta(minutes=1)


def check_usable(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> None:
    """401 for a revoked or expired token."""
    if revoked_at is not None:
        raise Unauthorized("invalid or revoked token")
    if expires_at is not None and expires_at <= now:
        raise Unauthorized("token expired: create a new one")


def last_use_is_stale(last_used_at: datetime | None, now: datetime) -> bool:
    """Whether a use now is worth recording (`last_used_at` is kept to the minute)."""
    return last_used_at is None or now - last_used_at >= LAST_USED_PRECISION


def authenticate(
    session: Session, plaintext: str, admins: GroupAdmins = NO_GROUP_ADMINS
) -> Principal:
    """The principal a bearer token stands for; 401 for unknown, expired or revoked tokens."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext)))
    if row is None:
        raise Unauthorized("invalid or revoked token")
    return principal_of(session, row, admins)


def principal_of(
    session: Session, row: ApiToken, admins: GroupAdmins = NO_GROUP_ADMINS
) -> Principal:
    """Who acts with the token `row`; 401 if it is expired or revoked.

    A platform admin is an admin user, or, for a token with the admin scope, a person whose
    groups make them one (`admins`).
    """
    now = utcnow()
    check_usable(row.revoked_at, row.expires_at, now)
    if last_use_is_stale(row.last_used_at, now):
        row.last_used_at = now
    user = session.get_one(User, row.user_id)
    issuer = session.get(User, row.created_by) if user.is_machine and row.created_by else None
    by_groups = "admin" in row.scopes and not user.is_admin and admins.include(session, user.id)
    return Principal(
        user_id=user.id,
        email=user.email,
        is_admin=user.is_admin or by_groups,
        token_team_id=row.team_id,
        scopes=frozenset(row.scopes),
        token_id=row.id,
        machine=user.is_machine,
        issued_by=issuer.email if issuer else None,
    )


def create_team_token(session: Session, access: TeamAccess, body: TokenCreate) -> TokenCreated:
    """Issue a team-bound token to the caller, or a machine token of its own (`machine_role`).

    A token never names another person: one issued "for" someone would let its issuer act,
    and be audited, as them.
    """
    if "admin" in body.scopes:
        raise InvalidInput("the admin scope cannot be granted to a team token", field="scopes")
    if access.principal.machine:
        # Else a machine token could keep its access alive past its own revocation.
        raise Forbidden("a machine token cannot issue tokens: ask a person in the team")
    if body.machine_role is not None:
        check_can_grant(access, body.machine_role)
        holder = _machine_principal(session, access, body.name, body.machine_role)
    else:
        holder = _member(session, access)
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, plaintext = issue_token(
        session,
        holder,
        name=body.name,
        scopes=list(body.scopes),
        team_id=access.team_id,
        expires_at=expires,
        created_by=access.principal.user_id,
    )
    detail: dict[str, object] = {"name": body.name, "scopes": row.scopes, "prefix": row.prefix}
    if body.machine_role is not None:
        detail |= {"machine_user_id": holder.id, "machine_role": body.machine_role.value}
    audit.record(
        session,
        access.principal,
        "token.create",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/tokens/{row.id}",
        detail=detail,
    )
    out = _out(row, machine=body.machine_role is not None)
    return TokenCreated(**out.model_dump(), token=plaintext)


def _member(session: Session, access: TeamAccess) -> User:
    """The caller, who must be a member: a team token of a platform admin who is not one
    would be refused at every use."""
    user_id = access.principal.user_id
    member = session.scalar(
        select(Membership).where(
            Membership.team_id == access.team_id, Membership.user_id == user_id
        )
    )
    if member is None:
        raise InvalidInput(f"you are not a member of team '{access.team.slug}': join it first")
    return session.get_one(User, user_id)


def _machine_principal(session: Session, access: TeamAccess, name: str, role: Role) -> User:
    """A new machine user, member of the team only, under an address no one can invite."""
    label = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "machine"
    email = f"{label}-{secrets.token_hex(4)}@{access.team.slug}.{MACHINE_DOMAIN}"
    user = User(email=email, name=name, is_machine=True)
    session.add(user)
    session.flush()
    session.add(Membership(team_id=access.team_id, user_id=user.id, role=role))
    return user


def list_team_tokens(
    session: Session, access: TeamAccess, cursor: str | None, limit: int
) -> tuple[list[TokenOut], str | None]:
    """The team's tokens: all of them for admins; otherwise the caller's own and the machine
    tokens the caller issued."""
    stmt = team_select(ApiToken, access)
    if access.role.rank < Role.admin.rank:
        me = access.principal.user_id
        stmt = stmt.where(or_(ApiToken.user_id == me, ApiToken.created_by == me))
    rows, nxt = paginate(session, stmt, ApiToken.id, cursor, limit)
    machines = set(
        session.scalars(
            select(User.id).where(User.id.in_({r.user_id for r in rows}), User.is_machine)
        )
    )
    return [_out(r, machine=r.user_id in machines) for r in rows], nxt


def get_team_token(session: Session, access: TeamAccess, token_id: int) -> TokenOut:
    """One token of the team that the caller may see."""
    row = _visible_token(session, access, token_id)
    return _out(row, machine=session.get_one(User, row.user_id).is_machine)


def _visible_token(session: Session, access: TeamAccess, token_id: int) -> ApiToken:
    row = owned(session, ApiToken, access, "token", id=token_id)
    me = access.principal.user_id
    if access.role.rank < Role.admin.rank and me not in (row.user_id, row.created_by):
        raise Forbidden("only team admins and owners can manage other members' tokens")
    return row


def revoke_team_token(session: Session, access: TeamAccess, token_id: int) -> None:
    """Revoke a token; it stops working at once (the row stays for the audit trail).

    A machine token's principal leaves the team with it: it is nobody else's.
    """
    row = _visible_token(session, access, token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    if session.get_one(User, row.user_id).is_machine:
        session.execute(
            delete(Membership).where(
                Membership.team_id == access.team_id, Membership.user_id == row.user_id
            )
        )
    audit.record(
        session,
        access.principal,
        "token.revoke",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/tokens/{row.id}",
        detail={"prefix": row.prefix},
    )


def _out(row: ApiToken, *, machine: bool) -> TokenOut:
    return TokenOut.model_validate(row).model_copy(update={"machine": machine})
