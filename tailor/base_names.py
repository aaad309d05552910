"""Catalog names, sources and the request and response shapes of the base-model catalog.

Only pydantic and the standard library: the API and every spec (TrainSpec, EvalSpec)
import this module.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

# What requests name: a hub-id-like name, never a path (no leading '/', '.', '~', no '..').
BASE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}(/[A-Za-z0-9][A-Za-z0-9._-]{0,99})?$"
_HUB_SEGMENT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
MAX_SOURCE = 1000


def check_base_name(value: str) -> str:
    """A catalog name, or ValueError saying that bases are named, not given as paths."""
    if not re.fullmatch(BASE_NAME_PATTERN, value):
        raise ValueError(
            "name a base model of the platform's catalog (`GET /v1/base-models`, `tailor base "
            "list`), e.g. starcoderbase-1b; paths and URLs are not accepted"
        )
    return value


# A field that names a base model: its catalog name, never where its files are.
BaseName = Annotated[str, StringConstraints(max_length=201), AfterValidator(check_base_name)]


def source_kind(source: str) -> str:
    """ "s3", "local" or "hub": how the platform fetches a catalog source."""
    if source.startswith("s3://"):
        return "s3"
    return "local" if source.startswith("/") else "hub"


def check_source(source: str) -> str:
    """A catalog source in its normal form, or ValueError saying which forms there are."""
    source = source.strip()
    if source.startswith("s3://"):
        parsed = urlparse(source)
        key = parsed.path.strip("/")
        if not parsed.netloc or ".." in key.split("/") or parsed.query or parsed.fragment:
            raise ValueError("an s3 source is s3://bucket/prefix, without '..', '?' or '#'")
        return f"s3://{parsed.netloc}/{key}".rstrip("/")
    if source.startswith("/"):
        path = PurePosixPath(source)
        if ".." in path.parts:
            raise ValueError("a directory source is an absolute path without '..'")
        return str(path)
    segments = source.split("/")
    if (
        len(segments) > 2
        or any(not s or s[0] in "._-" or not set(s) <= _HUB_SEGMENT for s in segments)
        or ".." in source
    ):
        raise ValueError(
            "source is a hub id (`org/name`), an s3://bucket/prefix, or an absolute directory "
            "on the workers (`/models/name`)"
        )
    return source


class BaseModelCreate(BaseModel):
    """A base model for the catalog (platform admins only)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        pattern=BASE_NAME_PATTERN,
        description="What requests name (`base_model`), e.g. `starcoderbase-1b`.",
    )
    source: str = Field(
        min_length=1,
        max_length=MAX_SOURCE,
        description="Where its files are: a hub id (`bigcode/starcoderbase-1b`), an "
        "`s3://bucket/prefix`, or an absolute directory on the workers.",
    )
    revision: str | None = Field(
        None, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$", description="Hub revision."
    )
    family: str = Field(
        "",
        max_length=64,
        pattern=r"^[a-z0-9_]*$",
        description="Architecture (`config.model_type`, e.g. gpt_bigcode); read from a "
        "directory's config.json when left empty.",
    )
    description: str = Field("", max_length=500)

    @field_validator("source")
    @classmethod
    def _known_form(cls, value: str) -> str:
        return check_source(value)


class BaseModelOut(BaseModel):
    """A catalog entry as platform admins see it."""

    model_config = ConfigDict(from_attributes=True)
    name: str
    source: str
    revision: str | None
    family: str
    description: str
    created_at: datetime


class BaseModelListed(BaseModel):
    """A catalog entry as every signed-in user sees it: what to name, not where it lives."""

    model_config = ConfigDict(from_attributes=True)
    name: str
    family: str
    description: str
