"""The Celery application (`celery -A worker.app worker`)."""

from __future__ import annotations

from celery import Celery

from tailor.config import get_settings
from tailor.queue import TASK_MODULES, celery_config

app = Celery("tailor", include=TASK_MODULES)
# Lazily: settings are read when the worker starts, not when this module is imported.
app.add_defaults(lambda: celery_config(get_settings()))
