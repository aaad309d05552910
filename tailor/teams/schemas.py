"""Request and response shapes for teams and members."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from tailor.db.models import Role

Slug = Annotated[
    str,
    StringConstraints(min_length=2, max_length=40, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"),
]


class TeamCreate(BaseModel):
    """A new team; the caller becomes its owner."""

    model_config = ConfigDict(extra="forbid")
    slug: Slug = Field(description="URL and namespace name: lowercase letters, digits, dashes.")
    name: str = Field(min_length=1, max_length=200, description="Display name.")


class TeamUpdate(BaseModel):
    """Changes to a team; `gpu_quota` may be changed by platform admins only."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    gpu_quota: int | None = Field(None, ge=0, le=10_000, description="GPUs the team may use.")
    telemetry_keeps_code: bool | None = Field(
        None,
        description="Keep the prompt and completion text of served completions, redacted as "
        "harvest redacts (off by default: only counts and timings are kept).",
    )


class TeamOut(BaseModel):
    """A team as the API shows it."""

    model_config = ConfigDict(from_attributes=True)
    slug: str
    name: str
    gpu_quota: int
    telemetry_keeps_code: bool = False
    created_at: datetime


class MemberCreate(BaseModel):
    """Add a person to a team by e-mail (the user is created if new)."""

    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    name: str = Field("", max_length=200)
    role: Role = Role.member


class MemberUpdate(BaseModel):
    """Change a member's role."""

    model_config = ConfigDict(extra="forbid")
    role: Role


class MemberOut(BaseModel):
    """A member of a team."""

    user_id: int
    email: str
    name: str
    role: Role
    machine: bool = Field(False, description="A machine token's principal, not a person.")
    created_at: datetime
