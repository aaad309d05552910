"""The Celery application (`celery -A worker.app worker`)."""

from __future__ import annotations

from typing import Any

from celery import Celery, bootsteps, signals

from tailor.config import get_settings
from tailor.queue import TASK_MODULES, celery_config

app = Celery("tailor", include=TASK_MODULES)
# Lazily: settings are read when the worker starts, not when this module is imported.
app.add_defaults(lambda: celery_config(get_settings()))


class Heartbeat(bootsteps.StartStopStep):
    """Touches the alive file from the consumer's timer: it stays fresh while the worker's
    main loop turns (tasks run in pool processes and do not hold it), and goes stale when
    that loop is wedged, so the liveness probe restarts the pod."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.entry: Any = None

    def start(self, parent: Any) -> None:
        settings = get_settings()
        if settings.alive_file is None:
            return
        path = settings.alive_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        self.entry = parent.timer.call_repeatedly(settings.alive_interval_s, path.touch)

    def stop(self, parent: Any) -> None:
        if self.entry is not None:
            self.entry.cancel()
            self.entry = None


app.steps["consumer"].add(Heartbeat)


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
