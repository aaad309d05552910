"""People who sign in through the identity provider: their user, and teams from their groups."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor import audit
from tailor.db.base import utcnow
from tailor.db.models import GroupMapping, Identity, Membership, Role, Team, User
from tailor.errors import Forbidden
from tailor.services.tokens.service import MACHINE_DOMAIN
from tailor.tenancy import Principal

GROUPS = "groups"


def provision(session: Session, issuer: str, claims: dict[str, Any], groups: list[str]) -> User:
    """The user for this provider account, made at the first sign-in.

    A first sign-in with a verified address that an existing user has (a person invited by
    e-mail before single sign-on) links to that user.
    """
    subject = str(claims["sub"])
    identity = session.scalar(
        select(Identity).where(Identity.issuer == issuer, Identity.subject == subject)
    )
    if identity is not None:
        user = session.get_one(User, identity.user_id)
        identity.groups, identity.last_sign_in_at = groups, utcnow()
        return user
    email = _verified_email(claims)
    found = session.scalar(select(User).where(User.email == email))
    if found is not None and found.is_machine:
        raise Forbidden("this address belongs to a machine principal")
    if found is not None and session.scalar(
        select(Identity.id).where(Identity.user_id == found.id, Identity.issuer == issuer)
    ):
        # Another account of the same provider holds this user already: the provider
        # reassigned the address, and the new holder must not inherit the old one's access.
        raise Forbidden(f"{email} is linked to another account of the identity provider")
    created = found is None
    if found is None:
        user = User(email=email, name=str(claims.get("name") or "")[:200])
        session.add(user)
        session.flush()
    else:
        user = found
    session.add(Identity(user_id=user.id, issuer=issuer, subject=subject, groups=groups))
    session.flush()
    actor = Principal(user_id=user.id, email=user.email, scopes=frozenset())
    audit.record(
        session,
        actor,
        "user.provision" if created else "user.link",
        resource=f"users/{user.id}",
        detail={"issuer": issuer, "subject": subject},
    )
    return user


def _verified_email(claims: dict[str, Any]) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise Forbidden("the identity provider sent no e-mail address: add the 'email' scope")
    if claims.get("email_verified") is False:
        raise Forbidden("the identity provider has not verified this e-mail address")
    email = email.strip().lower()
    if email.endswith("." + MACHINE_DOMAIN) or email.endswith("@" + MACHINE_DOMAIN):
        raise Forbidden("this address is reserved for machine principals")
    return email


def sync_memberships(session: Session, user: User, groups: list[str]) -> None:
    """Make the user's memberships in mapped teams follow `groups` (audited).

    A team with group mappings gets the strongest mapped role of the person's groups, and a
    membership made from groups goes when the groups (or the mappings) no longer give one.
    Manual memberships are left alone.
    """
    mappings = session.scalars(select(GroupMapping)).all()
    wanted: dict[int, Role] = {}
    for m in mappings:
        if m.group_name in groups and (
            m.team_id not in wanted or m.role.rank > wanted[m.team_id].rank
        ):
            wanted[m.team_id] = m.role
    current = {
        m.team_id: m
        for m in session.scalars(select(Membership).where(Membership.user_id == user.id))
    }
    # Teams with a mapping, and teams where groups gave a membership whose mapping is gone.
    mapped = {m.team_id for m in mappings} | {
        team_id for team_id, m in current.items() if m.source == GROUPS
    }
    actor = Principal(user_id=user.id, email=user.email, scopes=frozenset())
    for team_id in sorted(mapped):
        member, role = current.get(team_id), wanted.get(team_id)
        if member is not None and member.source != GROUPS:
            continue
        if member is None and role is not None:
            session.add(Membership(team_id=team_id, user_id=user.id, role=role, source=GROUPS))
            _audit(session, actor, team_id, "member.add", user, role)
        elif member is not None and role is None:
            session.delete(member)
            _audit(session, actor, team_id, "member.remove", user, member.role)
        elif member is not None and role is not None and member.role != role:
            member.role = role
            _audit(session, actor, team_id, "member.update", user, role)
    session.flush()


def _audit(
    session: Session, actor: Principal, team_id: int, action: str, user: User, role: Role
) -> None:
    slug = session.get_one(Team, team_id).slug
    audit.record(
        session,
        actor,
        action,
        team_id=team_id,
        resource=f"teams/{slug}/members/{user.id}",
        detail={"email": user.email, "role": role.value, "source": "identity-provider groups"},
    )
