"""The Celery application (`celery -A worker.app worker`)."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from tailor.config import get_settings
from tailor.queue import TASK_MODULES, celery_config

app = Celery("tailor", include=TASK_MODULES)
# Lazily: settings are read when the worker starts, not when this module is imported.
app.add_defaults(lambda: celery_config(get_settings()))


@signals.worker_ready.connect
@signals.beat_init.connect
def _mark_ready(**_: Any) -> None:
    """The worker consumes (or beat schedules): the readiness probe may pass."""
    path = get_settings().ready_file
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


@signals.worker_shutdown.connect
def _mark_stopping(**_: Any) -> None:
    """A stopping worker takes no new work: the probe fails again."""
    path = get_settings().ready_file
    if path is not None:
        path.unlink(missing_ok=True)
