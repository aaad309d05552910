"""Editor events against served completions (Tabby's `/v1/events`, OpenAI-side feedback): checked
against the caller's team and queued for telemetry."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from tailor.stages.serve.callers import Caller
from tailor.stages.serve.deps import ServingState
from tailor.stages.serve.errors import ServeError
from tailor.telemetry.records import Feedback


def completion_not_found(completion_id: str) -> ServeError:
    """404 for an unknown completion id or another team's (which must look the same)."""
    return ServeError(
        404,
        "completion_not_found",
        f"the completion {completion_id!r} does not exist or is not your team's",
        param="completion_id",
    )


async def record(
    state: ServingState, who: Caller, completion_id: str, kind: str, choice_index: int
) -> dict[str, Any]:
    """Record `kind` against one of the caller's team's completions; 404 for any other id.

    A gateway without telemetry (no database) acknowledges it with `recorded: false`.
    """
    recorder = state.telemetry
    if recorder is None or who.team_id is None:
        return acknowledgement(completion_id, kind, recorded=False)
    event = Feedback(completion_id, kind, choice_index)
    if not await run_in_threadpool(recorder.feedback, who.team_id, event):
        raise completion_not_found(completion_id)
    return acknowledgement(completion_id, kind, recorded=True)


def acknowledgement(completion_id: str, kind: str, *, recorded: bool) -> dict[str, Any]:
    """The answer to an event: which kind was taken, and whether it was recorded."""
    return {"accepted": kind, "completion_id": completion_id, "recorded": recorded}
