"""Response shapes for jobs, their event log and their metric series."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator

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


# Longer lines than the job's rows hold are cut when stored, as a local run's are; this bound
# only keeps a batch's size in check.
MAX_MESSAGE = 100_000


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricsEvent(BaseModel):
    """`{"event": "metrics", "step": N, "<series>": value, ...}`: one optimizer step."""

    # Every other field is a series: a number, or null (left out, as NaN and infinities are).
    model_config = ConfigDict(extra="allow", json_schema_extra={"propertyNames": {"maxLength": 64}})
    __pydantic_extra__: dict[str, StrictInt | StrictFloat | None] = Field(init=False)

    event: Literal["metrics"]
    step: int = Field(0, ge=0, description="The x axis of every series in the event.")

    @model_validator(mode="after")
    def _names_fit(self) -> MetricsEvent:
        for name in self.model_extra or {}:
            if len(name) > 64:
                raise ValueError(f"metric name {name[:64]!r}... is longer than 64 characters")
        return self


class LogEvent(_Event):
    """`{"event": "log", "message"}`: a line of the job's event log."""

    event: Literal["log"]
    message: str = Field(max_length=MAX_MESSAGE, description="Stored cut to 4000 characters.")


class ProgressEvent(_Event):
    """`{"event": "progress", "fraction", "message"}`: how far the job is, and its phase."""

    event: Literal["progress"]
    fraction: float = Field(ge=0.0, le=1.0)
    message: str = Field("", max_length=MAX_MESSAGE, description="Stored cut to 500 characters.")


class FinalEvent(BaseModel):
    """`result`, `error` or `cancelled`: the run's end (the job ends by its phase report)."""

    model_config = ConfigDict(extra="allow")

    event: Literal["result", "error", "cancelled"]


TrainingEvent = Annotated[
    MetricsEvent | LogEvent | ProgressEvent | FinalEvent, Field(discriminator="event")
]

MAX_EVENTS_PER_BATCH = 500


class EventBatch(_Event):
    """Events of a training pod, in the order it emitted them (the JSON lines of stdout)."""

    events: list[TrainingEvent] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)


class EventsRecorded(BaseModel):
    """How many events of a batch were stored."""

    recorded: int
