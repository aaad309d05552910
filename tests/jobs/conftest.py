"""Job fixtures: a broker to see what the reaper sends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from tailor.config import Settings
from tailor.queue import make_sender
from tests.conftest import redis_db


@pytest.fixture
def broker() -> Iterator[tuple[Celery, redis.Redis]]:
    """A sender to a private Redis database, and that database (read it with queued_tasks)."""
    db = redis_db()
    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    client.flushdb()
    url = f"redis://127.0.0.1:6379/{db}"
    yield make_sender(Settings(broker_url=url, result_backend=url)), client
    client.flushdb()
