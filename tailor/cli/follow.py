"""Follow a job from the terminal: a progress bar, its new log lines, its final state."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tailor.cli.client import Client
from tailor.cli.output import err_console

FINAL = {"succeeded", "failed", "cancelled"}


def follow_job(
    api: Client, team: str, job_id: str, poll_s: float = 1.0, timeout_s: float = 24 * 3600
) -> dict[str, Any]:
    """Poll a job until it is final, printing its events; returns the final job."""
    last_event, deadline = 0, time.monotonic() + timeout_s
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(job_id, total=1.0)
        while True:
            job = api.get(f"/v1/teams/{team}/jobs/{job_id}")
            for event in api.get(
                f"/v1/teams/{team}/jobs/{job_id}/events", params={"after": last_event}
            ):
                last_event = event["id"]
                bar.console.print(f"[dim]{event['created_at'][11:19]}[/dim] {event['message']}")
            bar.update(task, completed=job["progress"], description=job["message"] or job_id)
            if job["state"] in FINAL or time.monotonic() > deadline:
                return dict(job)
            time.sleep(poll_s)
