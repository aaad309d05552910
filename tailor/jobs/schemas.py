"""Response shapes for jobs, their event log and their metric series."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tailor.db.models import Job, JobState


class JobOut(BaseModel):
    """A job's state as the API shows it."""

    id: str = Field(description="The job's id.")
    kind: str
    state: JobState
    progress: float = Field(ge=0.0, le=1.0)
    message: str
    error: str | None
    attempts: int
    cancel_requested: bool
    spec: dict[str, Any]
    result: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    usage: dict[str, Any] = Field(
        default_factory=dict,
        description="What it used: gpu_type, gpus, gpu_seconds, cpu_seconds, wall_seconds.",
    )
    estimate: dict[str, Any] = Field(
        default_factory=dict, description="Fine-tunes: expected GPU-hours and price at start."
    )
    cost: dict[str, Any] | None = Field(
        None, description="What it cost at its GPU type's price (on a job's own page)."
    )
    warnings: list[str] = Field(
        default_factory=list, description="E.g. the team's budget is past its soft limit."
    )

    @classmethod
    def of(cls, job: Job) -> JobOut:
        """Build from a row."""
        return cls(
            id=job.uid,
            kind=job.kind,
            state=job.state,
            progress=job.progress,
            message=job.message,
            error=job.error,
            attempts=job.attempts,
            cancel_requested=job.cancel_requested,
            spec=job.spec,
            result=job.result,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            usage=job.usage,
            estimate=job.estimate,
        )


class JobEventOut(BaseModel):
    """One line of a job's event log."""

    id: int
    level: str
    message: str
    created_at: datetime


class MetricPoint(BaseModel):
    """One point of a series."""

    step: int
    value: float


class MetricSeries(BaseModel):
    """A job's metrics by name, each a series ordered by step."""

    series: dict[str, list[MetricPoint]]
