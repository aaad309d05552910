"""Job fixtures: a broker to see what the reaper sends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from tests.conftest import celery_broker


@pytest.fixture
def broker() -> Iterator[tuple[Celery, redis.Redis]]:
    """A sender to a private Redis database, and that database (read it with queued_tasks)."""
    yield from celery_broker()
