"""Request and response shapes for API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tailor.db.models import Role

Scope = Literal["read", "write", "inference", "admin"]


class TokenCreate(BaseModel):
    """A new token bound to the team, always issued to its caller.

    With `machine_role` it is a machine token instead (CI, automation): a principal of its
    own, in this team only, with that role, which may be no stronger than the caller's.
    """

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, description="What the token is for.")
    scopes: list[Scope] = Field(
        default_factory=lambda: list[Scope](["read", "write"]),
        min_length=1,
        description="read, write (mutations), inference (IDE completions); admin is not grantable.",
    )
    expires_in_days: int | None = Field(90, ge=1, le=3650, description="None = never expires.")
    machine_role: Role | None = Field(
        None,
        description="Issue a machine token with this role in the team (at most yours); "
        "unset: a personal token that acts as you.",
    )


class TokenOut(BaseModel):
    """A token as lists show it: never the secret, only its visible prefix."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    prefix: str
    scopes: list[str]
    user_id: int
    machine: bool = Field(False, description="A machine token: its own principal.")
    created_by: int | None = Field(None, description="The user who issued it.")
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class TokenCreated(TokenOut):
    """The one response that carries the secret: shown once, store it now."""

    token: str
