"""A cache that PostgreSQL empties: kept until a NOTIFY, nothing kept while not listening."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from tailor.db.notices import NotifiedCache
from tests.conftest import ONLY_POSTGRESQL, eventually

pytestmark = ONLY_POSTGRESQL


@pytest.fixture
def cache(db_engine: Engine) -> Iterator[NotifiedCache[str, int]]:
    """A listening cache on a channel of its own."""
    with NotifiedCache[str, int](db_engine, f"test_{uuid.uuid4().hex[:8]}", retry_s=0.05) as c:
        assert eventually(lambda: c.live)
        yield c


def notify(engine: Engine, channel: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(f'NOTIFY "{channel}"'))


def test_a_value_is_kept_until_a_notice(cache: NotifiedCache[str, int], db_engine: Engine) -> None:
    cache.put("k", 1, cache.generation)
    assert cache.get("k") == 1
    notify(db_engine, cache.channel)
    assert eventually(lambda: cache.get("k") is None)


def test_a_value_read_before_a_notice_is_not_kept(
    cache: NotifiedCache[str, int], db_engine: Engine
) -> None:
    before = cache.generation
    notify(db_engine, cache.channel)
    assert eventually(lambda: cache.generation != before)
    cache.put("k", 1, before)
    assert cache.get("k") is None


def test_nothing_is_kept_while_not_listening(db_engine: Engine) -> None:
    cache = NotifiedCache[str, int](db_engine, "test_idle")
    cache.put("k", 1, cache.generation)
    assert cache.get("k") is None


def test_a_value_is_dropped_when_too_old(db_engine: Engine) -> None:
    with NotifiedCache[str, int](db_engine, f"test_{uuid.uuid4().hex[:8]}", max_age_s=0) as c:
        assert eventually(lambda: c.live)
        c.put("k", 1, c.generation)
        assert c.get("k") is None


def test_the_oldest_value_makes_room(db_engine: Engine) -> None:
    with NotifiedCache[str, int](db_engine, f"test_{uuid.uuid4().hex[:8]}", max_entries=2) as c:
        assert eventually(lambda: c.live)
        for i, key in enumerate("abc"):
            c.put(key, i, c.generation)
        assert [c.get(k) for k in "abc"] == [None, 1, 2]


def test_a_lost_connection_empties_it_and_it_listens_again(
    cache: NotifiedCache[str, int], db_engine: Engine
) -> None:
    cache.put("k", 1, cache.generation)
    with db_engine.begin() as conn:
        killed = conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = :q"),
            {"q": f'LISTEN "{cache.channel}"'},
        ).scalar_one()
    assert killed
    assert eventually(lambda: cache.get("k") is None)
    assert eventually(lambda: cache.live)
    cache.put("k", 2, cache.generation)
    notify(db_engine, cache.channel)
    assert eventually(lambda: cache.get("k") is None)
