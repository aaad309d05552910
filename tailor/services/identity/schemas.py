"""Request and response shapes for single sign-on: group mappings, CLI sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tailor.db.models import Role
from tailor.services.teams.schemas import Slug

# The pattern asks for one character that is not whitespace: the schema then says what the
# stripping implies, and a client (or schemathesis) sending "  " is told so by the schema.
GroupName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=255,
        pattern=r"^[^\x00-\x1f]*[^\s\x00-\x1f][^\x00-\x1f]*$",
    ),
]


class GroupMappingCreate(BaseModel):
    """Members of `group` (as the provider names it in the groups claim) get `role` in `team`."""

    model_config = ConfigDict(extra="forbid")
    group: GroupName = Field(description="Group name, exactly as in the groups claim.")
    team: Slug = Field(description="The team's slug.")
    role: Role = Field(description="Role the group's members get (the strongest mapping wins).")


class GroupMappingOut(BaseModel):
    """A group mapping as the API shows it."""

    id: int
    group: str
    team: str
    role: Role
    created_at: datetime


class DeviceStart(BaseModel):
    """A device sign-in begun: the person confirms `user_code` at `verification_uri`."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int


class DevicePoll(BaseModel):
    """The device code to ask about."""

    model_config = ConfigDict(extra="forbid")
    device_code: str = Field(min_length=1, max_length=500)


class RefreshRequest(BaseModel):
    """A CLI session's refresh token."""

    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=1, max_length=200)


class CliSessionOut(BaseModel):
    """A CLI session: a short-lived API token and the refresh token that replaces it."""

    status: str = "complete"
    access_token: str
    refresh_token: str
    expires_in: int
    email: str


class DevicePending(BaseModel):
    """The person has not confirmed yet: ask again after `interval` seconds."""

    status: str = "pending"
    interval: int
