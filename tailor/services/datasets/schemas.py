"""Request and response shapes for datasets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tailor.db.models import Dataset, Job, JobState
from tailor.stages.harvest.outcome import unchanged_since


class DatasetOut(BaseModel):
    """A dataset with the state of the harvest that builds it."""

    id: str
    job_id: str
    state: JobState
    progress: float
    message: str
    error: str | None
    repositories: list[str]
    stats: dict[str, Any]
    unchanged_since: list[str] = Field(
        default_factory=list,
        description="When nothing changed since earlier datasets: their ids (this one is empty).",
    )
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, dataset: Dataset, job: Job) -> DatasetOut:
        """Build from a dataset row and its job."""
        return cls(
            id=dataset.uid,
            job_id=job.uid,
            state=job.state,
            progress=job.progress,
            message=job.message,
            error=job.error,
            repositories=dataset.repositories,
            stats=dataset.stats,
            unchanged_since=unchanged_since(dataset.stats or {}),
            created_at=dataset.created_at,
            finished_at=job.finished_at,
        )
