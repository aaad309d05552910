"""Request and response shapes for adapters, versions and endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tailor.base_names import BaseName
from tailor.db.models import Adapter, AdapterVersion
from tailor.stages.package.spec import ADAPTER_NAME_PATTERN, CombinationType

NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class VersionOut(BaseModel):
    """One immutable adapter version with its lineage and results."""

    adapter: str
    version: int
    base_model: str
    base_revision: str | None
    dataset_id: str | None
    origin: str
    metrics: dict[str, Any]
    evaluation: dict[str, Any]
    parents: list[str]
    size_bytes: int
    checksum: str
    created_at: datetime
    in_use_by: list[str] = Field(default_factory=list, description="Endpoints serving it.")

    @classmethod
    def of(cls, adapter: Adapter, v: AdapterVersion, in_use_by: list[str]) -> VersionOut:
        """Build from rows."""
        return cls(
            adapter=adapter.name,
            version=v.version,
            base_model=v.base_model,
            base_revision=v.base_revision,
            dataset_id=v.dataset_uid,
            origin=v.origin,
            metrics=v.metrics,
            evaluation=v.evaluation,
            parents=v.parents,
            size_bytes=v.size_bytes,
            checksum=v.checksum,
            created_at=v.created_at,
            in_use_by=in_use_by,
        )


class AdapterOut(BaseModel):
    """A named adapter and its latest version number."""

    name: str
    base_model: str
    description: str
    latest_version: int | None
    created_at: datetime


class ComposeInput(BaseModel):
    """One adapter version to combine, and its weight."""

    model_config = ConfigDict(extra="forbid")
    adapter: str = Field(pattern=ADAPTER_NAME_PATTERN, description="An adapter of the team.")
    version: int | None = Field(None, ge=1, description="Default: the latest version.")
    weight: float = Field(1.0, allow_inf_nan=False)


class ComposeRequest(BaseModel):
    """Combine versions of one base into a new version of the adapter the URL names."""

    model_config = ConfigDict(extra="forbid")
    inputs: list[ComposeInput] = Field(min_length=2, max_length=8)
    combination: CombinationType = Field(
        "svd",
        description="linear: equal ranks, adds A and B; svd: any ranks, cut to svd_rank; "
        "cat: exact, rank is the sum of the input ranks.",
    )
    svd_rank: int | None = Field(None, ge=1, description="Rank of an svd result.")
    eval_dataset_id: str | None = Field(
        None, description="Held-out code for the evaluation; default the first input's dataset."
    )


class TransferRequest(BaseModel):
    """Re-home a version on another base of the same architecture and shapes."""

    model_config = ConfigDict(extra="forbid")
    target_base: BaseName = Field(
        description="Catalog name of the base to move to (`GET /v1/base-models`)."
    )
    target_revision: str | None = Field(
        None, max_length=200, description="Leave out: the catalog says which revision it is."
    )
    target_name: str | None = Field(
        None,
        pattern=ADAPTER_NAME_PATTERN,
        description="Adapter to register the result under; default '<name>-transfer'.",
    )
    eval_dataset_id: str | None = Field(
        None, description="Held-out code for the evaluation; default the source's dataset."
    )


class ImportForm(BaseModel):
    """The text fields of an adapter upload (multipart form fields beside the files)."""

    model_config = ConfigDict(extra="forbid")
    base_model: str | None = Field(
        None,
        max_length=201,
        description="Catalog name of the base it was trained on; default the adapter's.",
    )
    base_revision: str | None = Field(
        None, max_length=200, description="Leave out: the catalog says which revision it is."
    )
    eval_dataset_id: str | None = Field(
        None, max_length=32, description="Held-out code for the evaluation after the import."
    )


class ExportRequest(BaseModel):
    """Merge a version into its base and export a standalone safetensors checkpoint."""

    model_config = ConfigDict(extra="forbid")
    max_shard_size: str = Field("5GB", pattern=r"^[1-9][0-9]*(KB|MB|GB)$")


class ExportLinks(BaseModel):
    """Presigned download links of a finished export; they stop working at `expires_at`."""

    adapter: str
    version: int
    expires_at: datetime
    files: dict[str, str] = Field(description="File name -> presigned GET URL.")
