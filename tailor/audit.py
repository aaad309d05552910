"""Audit log: one row for every mutating call, never holding a secret."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tailor.db.models import AuditEvent
from tailor.tenancy import Principal

_SECRET_KEYS = ("credential", "token", "password", "secret", "key")


def _redacted(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        k: "<redacted>" if any(s in k.lower() for s in _SECRET_KEYS) else v
        for k, v in detail.items()
    }


def record(
    session: Session,
    principal: Principal | None,
    action: str,
    *,
    team_id: int | None = None,
    resource: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit event to the caller's transaction (it commits with the change).

    A machine token's events name the machine as the actor and its issuer in `issued_by`.
    """
    detail = dict(detail or {})
    if principal is not None and principal.issued_by:
        detail["issued_by"] = principal.issued_by
    session.add(
        AuditEvent(
            team_id=team_id,
            actor_user_id=principal.user_id if principal else None,
            actor=principal.email if principal else "system",
            action=action,
            resource=resource,
            detail=_redacted(detail),
        )
    )
