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


# Kubernetes' resource.Quantity, without a sign: a quota is never negative.
Quantity = Annotated[
    str,
    StringConstraints(
        max_length=32,
        pattern=r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
        r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
    ),
]


class ClusterQuota(BaseModel):
    """What a team gets on the cluster besides its GPUs; unset means the platform default."""

    model_config = ConfigDict(extra="forbid")
    gpu_type: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$", description="GPU pool of the guarantee."
    )
    gpu_borrowing_limit: int | None = Field(
        None, ge=0, le=4096, description="Idle GPUs of other teams it may borrow."
    )
    cpu: Quantity | None = Field(None, description="CPU its pods may request, e.g. '96'.")
    memory: Quantity | None = Field(None, description="Memory its pods may request, e.g. '768Gi'.")
    pods: int | None = Field(None, ge=1, le=10_000, description="Pods at once in its namespace.")


class TeamCreate(BaseModel):
    """A new team; the caller becomes its owner."""

    model_config = ConfigDict(extra="forbid")
    slug: Slug = Field(description="URL and namespace name: lowercase letters, digits, dashes.")
    name: str = Field(min_length=1, max_length=200, description="Display name.")


class TeamUpdate(BaseModel):
    """Changes to a team; `gpu_quota` may be changed by platform admins only."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    gpu_quota: int | None = Field(None, ge=0, le=4096, description="GPUs the team may use.")
    cluster_quota: ClusterQuota | None = Field(
        None, description="Platform admins only: replaces the team's cluster quota."
    )
    telemetry_keeps_code: bool | None = Field(
        None,
        description="Keep the prompt and completion text of served completions, redacted as "
        "harvest redacts (off by default: only counts and timings are kept).",
    )


class TeamSeed(BaseModel):
    """A team as the chart declares it: created if new, else brought in line (idempotent)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, description="Display name.")
    gpu_quota: int = Field(0, ge=0, le=4096, description="GPUs the team is guaranteed.")
    cluster_quota: ClusterQuota = Field(default_factory=ClusterQuota)


class ChartQuota(BaseModel):
    """A team's quota as the chart's values spell it (the Team resource's fields)."""

    model_config = ConfigDict(extra="forbid")
    gpus: int = Field(0, ge=0, le=4096)
    gpuType: str | None = None
    gpuBorrowingLimit: int | None = None
    cpu: str | int | None = None
    memory: str | int | None = None
    pods: int | None = None


class ChartTeam(BaseModel):
    """One entry of the chart's `teams` value."""

    model_config = ConfigDict(extra="forbid")
    name: Slug
    displayName: str | None = None
    quota: ChartQuota = Field(default_factory=ChartQuota)

    def seed(self) -> TeamSeed:
        """What the API's seed route takes (checked here, so a bad file sends nothing)."""
        q = self.quota
        return TeamSeed(
            name=self.displayName or self.name,
            gpu_quota=q.gpus,
            cluster_quota=ClusterQuota(
                gpu_type=q.gpuType,
                gpu_borrowing_limit=q.gpuBorrowingLimit,
                cpu=None if q.cpu is None else str(q.cpu),
                memory=None if q.memory is None else str(q.memory),
                pods=q.pods,
            ),
        )


class TeamOut(BaseModel):
    """A team as the API shows it."""

    model_config = ConfigDict(from_attributes=True)
    slug: str
    name: str
    gpu_quota: int
    cluster_quota: ClusterQuota = Field(default_factory=ClusterQuota)
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
