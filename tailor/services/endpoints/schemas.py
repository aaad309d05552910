"""What the endpoint routes take and answer."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tailor.db.models import Endpoint
from tailor.services.adapters.schemas import NAME


class EndpointCreate(BaseModel):
    """Publish an adapter version under a model name the team's IDEs use."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME, description="Model name clients send; default the adapter's.")
    adapter: str = Field(pattern=NAME)
    version: int | None = Field(None, ge=1, description="Default: the latest version.")
    backend: Literal["tailor", "vllm"] = "tailor"
    replicas: int = Field(1, ge=0, le=64)
    override_gate: bool = Field(
        False, description="Publish although the team's gate fails (audited)."
    )


class Promote(BaseModel):
    """Point an endpoint at another version of its adapter."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)
    override_gate: bool = False


class EndpointOut(BaseModel):
    """A published endpoint."""

    name: str
    adapter: str
    version: int
    previous_version: int | None
    backend: str
    replicas: int
    gate_overridden: bool
    url: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(
        cls, ep: Endpoint, adapter: str, version: int, previous: int | None, url: str
    ) -> EndpointOut:
        """Build from rows."""
        return cls(
            name=ep.name,
            adapter=adapter,
            version=version,
            previous_version=previous,
            backend=ep.backend,
            replicas=ep.replicas,
            gate_overridden=ep.gate_overridden,
            url=url,
            created_at=ep.created_at,
            updated_at=ep.updated_at,
        )


class EndpointReport(BaseModel):
    """What the operator saw of an endpoint's InferenceEndpoint (its status)."""

    model_config = ConfigDict(extra="forbid")
    phase: str = Field(max_length=40)
    reason: str | None = Field(None, max_length=2000)
    conditions: list[dict[str, object]] = Field(default_factory=list, max_length=50)
    url: str | None = Field(None, max_length=500, description="status.url: its backend Service.")
