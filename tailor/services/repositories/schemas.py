"""Request and response shapes for repositories."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    model_validator,
)

RepoName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
Glob = Annotated[str, StringConstraints(min_length=1, max_length=500)]
CredentialKind = Literal["none", "token", "ssh_key"]


def _check_branch(name: str) -> str:
    # A branch starting with '-' would be read by git as an option.
    if name.startswith("-") or ".." in name or name.endswith((".lock", "/")):
        raise ValueError("not a valid git branch name")
    return name


Branch = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._/-]+$"),
    AfterValidator(_check_branch),
]


class RepositoryCreate(BaseModel):
    """Register a repository; the credential is write-only and encrypted at rest."""

    model_config = ConfigDict(extra="forbid")
    name: RepoName = Field(description="Unique within the team.")
    url: str = Field(max_length=2000, description="https://, ssh:// or git@host:org/repo.git")
    branch: Branch = "main"
    include: list[Glob] = Field(
        default_factory=list, max_length=100, description="Only paths matching one of these globs."
    )
    exclude: list[Glob] = Field(
        default_factory=list, max_length=100, description="Skip paths matching any of these globs."
    )
    credential_kind: CredentialKind = "none"
    credential: SecretStr | None = Field(
        None, description="HTTPS access token (or 'user:token') or an SSH private key."
    )

    @model_validator(mode="after")
    def _credential_matches_kind(self) -> RepositoryCreate:
        _check_credential(self.credential_kind, self.credential)
        return self


class RepositoryUpdate(BaseModel):
    """Changes to a repository; send a new credential to rotate it."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, max_length=2000)
    branch: Branch | None = None
    include: list[Glob] | None = Field(None, max_length=100)
    exclude: list[Glob] | None = Field(None, max_length=100)
    credential_kind: CredentialKind | None = None
    credential: SecretStr | None = None

    @model_validator(mode="after")
    def _credential_matches_kind(self) -> RepositoryUpdate:
        if self.credential_kind is not None:
            _check_credential(self.credential_kind, self.credential)
        elif self.credential is not None:
            raise ValueError("set credential_kind together with credential")
        return self


def _check_credential(kind: str, credential: SecretStr | None) -> None:
    if kind == "none" and credential is not None:
        raise ValueError("credential given but credential_kind is 'none'")
    if kind != "none" and (credential is None or not credential.get_secret_value().strip()):
        raise ValueError(f"credential_kind '{kind}' needs a non-empty credential")
    if (
        kind == "ssh_key"
        and credential is not None
        and ("PRIVATE KEY" not in credential.get_secret_value())
    ):
        raise ValueError("ssh_key credential must be a PEM/OpenSSH private key block")


class RepositoryOut(BaseModel):
    """A repository as the API shows it: whether it has a credential, never the credential."""

    model_config = ConfigDict(from_attributes=True)
    name: str
    url: str
    branch: str
    include: list[str]
    exclude: list[str]
    credential_kind: str
    has_credential: bool
    last_harvested_commit: str | None
    created_at: datetime
    updated_at: datetime
