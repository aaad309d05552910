"""Issuing, resolving and revoking API tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor import audit
from tailor.db.base import utcnow
from tailor.db.models import ApiToken, Membership, User
from tailor.errors import Forbidden, InvalidInput, Unauthorized
from tailor.pagination import paginate
from tailor.security import hash_token, new_api_token, visible_prefix
from tailor.tenancy import Principal, TeamAccess, owned, team_select
from tailor.tokens.schemas import TokenCreate, TokenCreated, TokenOut


def issue_token(
    session: Session,
    user: User,
    *,
    name: str,
    scopes: list[str],
    team_id: int | None,
    expires_at: datetime | None,
) -> tuple[ApiToken, str]:
    """Create a token row and return it with the plaintext (which is never stored)."""
    plaintext = new_api_token()
    row = ApiToken(
        user_id=user.id,
        team_id=team_id,
        name=name,
        prefix=visible_prefix(plaintext),
        token_hash=hash_token(plaintext),
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
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


def authenticate(session: Session, plaintext: str) -> Principal:
    """The principal a bearer token stands for; 401 for unknown, expired or revoked tokens."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext)))
    now = utcnow()
    if row is None:
        raise Unauthorized("invalid or revoked token")
    check_usable(row.revoked_at, row.expires_at, now)
    if last_use_is_stale(row.last_used_at, now):
        row.last_used_at = now
    user = session.get_one(User, row.user_id)
    return Principal(
        user_id=user.id,
        email=user.email,
        is_admin=user.is_admin,
        token_team_id=row.team_id,
        scopes=frozenset(row.scopes),
    )


def create_team_token(session: Session, access: TeamAccess, body: TokenCreate) -> TokenCreated:
    """Issue a team-bound token for the caller or, for admins, for another member."""
    if "admin" in body.scopes:
        raise InvalidInput("the admin scope cannot be granted to a team token")
    user_id = body.user_id or access.principal.user_id
    if user_id != access.principal.user_id and access.role.rank < 2:
        raise Forbidden("only team admins and owners can issue tokens for other members")
    member = session.scalar(
        select(Membership).where(
            Membership.team_id == access.team_id, Membership.user_id == user_id
        )
    )
    if member is None:
        raise InvalidInput(f"user {user_id} is not a member of team '{access.team.slug}'")
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, plaintext = issue_token(
        session,
        session.get_one(User, user_id),
        name=body.name,
        scopes=list(body.scopes),
        team_id=access.team_id,
        expires_at=expires,
    )
    audit.record(
        session,
        access.principal,
        "token.create",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/tokens/{row.id}",
        detail={"name": body.name, "scopes": row.scopes, "prefix": row.prefix},
    )
    return TokenCreated(**TokenOut.model_validate(row).model_dump(), token=plaintext)


def list_team_tokens(
    session: Session, access: TeamAccess, cursor: str | None, limit: int
) -> tuple[Sequence[ApiToken], str | None]:
    """The team's tokens: all of them for admins, the caller's own otherwise."""
    stmt = team_select(ApiToken, access)
    if access.role.rank < 2:
        stmt = stmt.where(ApiToken.user_id == access.principal.user_id)
    return paginate(session, stmt, ApiToken.id, cursor, limit)


def get_team_token(session: Session, access: TeamAccess, token_id: int) -> ApiToken:
    """One token of the team that the caller may see."""
    row = owned(session, ApiToken, access, "token", id=token_id)
    if access.role.rank < 2 and row.user_id != access.principal.user_id:
        raise Forbidden("only team admins and owners can manage other members' tokens")
    return row


def revoke_team_token(session: Session, access: TeamAccess, token_id: int) -> None:
    """Revoke a token; it stops working at once (the row stays for the audit trail)."""
    row = get_team_token(session, access, token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    audit.record(
        session,
        access.principal,
        "token.revoke",
        team_id=access.team_id,
        resource=f"teams/{access.team.slug}/tokens/{row.id}",
        detail={"prefix": row.prefix},
    )
