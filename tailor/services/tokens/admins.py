"""Platform admins by their identity-provider groups (`TAILOR_OIDC_ADMIN_GROUPS`).

Set at install time only: no API route writes it, so no team lead can make a group of theirs
an admin group. A person's groups are those of their last sign-in (`Identity.groups`), read at
each request: taken out of the group, they stop being an admin at their next sign-in, every
session already open included; the setting emptied, at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.db.models import Identity


@dataclass(frozen=True)
class GroupAdmins:
    """The provider whose groups count, and the groups whose members are platform admins."""

    issuer: str = ""
    groups: frozenset[str] = frozenset()

    @classmethod
    def of(cls, settings: Settings) -> GroupAdmins:
        """The settings' admin groups at the settings' provider (none without single sign-on)."""
        return cls(settings.oidc_issuer, frozenset(settings.oidc_admin_groups))

    def include(self, session: Session, user_id: int) -> bool:
        """Whether the user's groups at their last sign-in through the provider hold one."""
        if not self.issuer or not self.groups:
            return False
        found = session.scalars(
            select(Identity.groups).where(
                Identity.user_id == user_id, Identity.issuer == self.issuer
            )
        )
        return any(self.groups.intersection(groups or ()) for groups in found)


NO_GROUP_ADMINS = GroupAdmins()
