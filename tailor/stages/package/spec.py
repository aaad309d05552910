"""Typed specs of adapter operations: request bodies, CLI input files and `tailor.json`.

Imports only pydantic and the standard library: the API imports this module.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ADAPTER_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
ADAPTER_REF_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}@[1-9][0-9]*$"

AdapterRef = Annotated[str, Field(pattern=ADAPTER_REF_PATTERN, examples=["completion@3"])]
Origin = Literal["trained", "composed", "imported", "transferred"]
CombinationType = Literal["linear", "svd", "cat"]

MANIFEST_FILE = "tailor.json"
WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"


def format_ref(name: str, version: int) -> str:
    """`name@version`, the way lineage names a version."""
    return f"{name}@{version}"


class AdapterManifest(BaseModel):
    """`tailor.json`: what one adapter version is, where it came from and how it scored."""

    model_config = ConfigDict(extra="ignore")

    base_model: str = Field(description="Hub id, local path or s3 URL of the base model.")
    base_revision: str | None = Field(default=None, description="Commit or tag of the base model.")
    dataset_id: str | None = None
    origin: Origin = "trained"
    spec: dict[str, Any] = Field(default_factory=dict, description="The spec that produced it.")
    metrics: dict[str, float] = Field(default_factory=dict)
    evaluation: dict[str, Any] = Field(default_factory=dict)
    parents: list[AdapterRef] = Field(default_factory=list, description="Lineage: name@version.")
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    checksum: str | None = Field(default=None, description="sha256 of the files.")
    size_bytes: int | None = Field(default=None, ge=0)

    def same_base(self, other: AdapterManifest) -> bool:
        """True when both versions were trained on the same base model and revision."""
        return (self.base_model, self.base_revision) == (other.base_model, other.base_revision)


class WeightedAdapter(BaseModel):
    """One input of a composition: a stored version and its weight."""

    ref: AdapterRef
    weight: float = 1.0

    @field_validator("weight")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("weight must be a finite number")
        return value


class CompositionSpec(BaseModel):
    """Combine adapters of one base into a new version (PEFT's `add_weighted_adapter`).

    - `linear`: weighted sum of the A and B matrices; every input needs the same rank.
    - `svd`: weighted sum of the full updates, cut back to `svd_rank` (any input ranks).
    - `cat`: the inputs side by side; exact, and the rank is the sum of the input ranks.
    """

    adapters: list[WeightedAdapter] = Field(min_length=2)
    combination_type: CombinationType = "svd"
    svd_rank: int | None = Field(default=None, ge=1, description="svd result rank.")

    @model_validator(mode="after")
    def _coherent(self) -> CompositionSpec:
        refs = [a.ref for a in self.adapters]
        if len(set(refs)) != len(refs):
            raise ValueError(f"each adapter may appear once; got {refs}")
        if self.svd_rank is not None and self.combination_type != "svd":
            raise ValueError("svd_rank applies only to combination_type 'svd'")
        if all(a.weight == 0 for a in self.adapters):
            raise ValueError("at least one weight must be non-zero")
        return self


class TransferSpec(BaseModel):
    """Re-home an adapter on another base of the same architecture and shapes."""

    target_base: str = Field(description="Hub id, local path or s3 URL of the new base.")
    target_revision: str | None = None
