"""Per-team rate limits in requests and in tokens per minute: token buckets refilled continuously.

A request takes one request and its worst case in tokens (prompt plus n * max_tokens) when
it is admitted, both or neither; when it ends, the tokens it did not use go back (`settle`),
and a request refused before it generated anything gets everything back (`refund`). So what a
team is charged is what its completions cost, and a refused request costs nothing.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

REQUESTS = "requests_per_minute"
TOKENS = "tokens_per_minute"


class RateLimitedError(Exception):
    """The team has used its `limit` for now; `retry_after_s` until the request would fit."""

    def __init__(self, limit: str, per_minute: int, retry_after_s: float, message: str) -> None:
        super().__init__(message)
        self.limit, self.per_minute, self.retry_after_s = limit, per_minute, retry_after_s


class TooLargeError(ValueError):
    """The request alone needs more tokens than the team may use in a minute: never admissible."""

    def __init__(self, tokens: int, per_minute: int) -> None:
        super().__init__(
            f"this request may use {tokens} tokens (prompt plus n * max_tokens), more than the "
            f"{per_minute} tokens per minute the team may use; lower n or max_tokens"
        )
        self.tokens, self.per_minute = tokens, per_minute


@dataclass(frozen=True)
class Reservation:
    """What one admitted request holds until it settles."""

    team: str
    tokens: int


@dataclass
class _Bucket:
    level: float
    stamp: float
    capacity: float

    def refill(self, now: float, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.level = min(self.capacity, self.level + (now - self.stamp) * per_minute / 60.0)
        self.stamp = now

    def wait_for(self, amount: float, per_minute: int) -> float:
        """Seconds until `amount` is in the bucket (0 if it is now)."""
        return max(0.0, (amount - self.level) * 60.0 / per_minute)

    def give_back(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    """Requests and tokens per minute per team, in bursts of up to a minute's worth."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def reserve(
        self, team: str, *, requests_per_minute: int, tokens_per_minute: int, tokens: int
    ) -> Reservation:
        """Take one request and `tokens` from the team's buckets, or RateLimitedError naming
        the limit that holds the request back longest (nothing taken either way it fails)."""
        if tokens > tokens_per_minute:
            raise TooLargeError(tokens, tokens_per_minute)
        asks = ((REQUESTS, requests_per_minute, 1), (TOKENS, tokens_per_minute, tokens))
        now = self._clock()
        with self._lock:
            buckets = [self._bucket(team, name, per_minute, now) for name, per_minute, _ in asks]
            waits = [b.wait_for(n, pm) for b, (_, pm, n) in zip(buckets, asks, strict=True)]
            if max(waits) > 0:
                slowest = waits.index(max(waits))
                name, per_minute, amount = asks[slowest]
                raise RateLimitedError(
                    name,
                    per_minute,
                    waits[slowest],
                    _refusal(team, name, per_minute, amount, buckets[slowest].level),
                )
            for bucket, (_, _, amount) in zip(buckets, asks, strict=True):
                bucket.level -= amount
        return Reservation(team, tokens)

    def settle(self, reservation: Reservation, used: int) -> None:
        """The request has ended having used `used` tokens: the rest of its tokens go back."""
        with self._lock:
            self._give_back(reservation.team, TOKENS, max(0, reservation.tokens - used))

    def refund(self, reservation: Reservation) -> None:
        """The request was refused before it generated anything: it costs nothing."""
        with self._lock:
            self._give_back(reservation.team, REQUESTS, 1)
            self._give_back(reservation.team, TOKENS, reservation.tokens)

    def _bucket(self, team: str, name: str, per_minute: int, now: float) -> _Bucket:
        bucket = self._buckets.setdefault((team, name), _Bucket(per_minute, now, per_minute))
        bucket.refill(now, per_minute)
        return bucket

    def _give_back(self, team: str, name: str, amount: float) -> None:
        bucket = self._buckets.get((team, name))
        if bucket is not None:
            bucket.refill(self._clock(), int(bucket.capacity))
            bucket.give_back(amount)


def _refusal(team: str, limit: str, per_minute: int, amount: int, level: float) -> str:
    if limit == REQUESTS:
        return f"team {team!r} is limited to {per_minute} requests per minute"
    return (
        f"team {team!r} is limited to {per_minute} tokens per minute (prompt plus n * "
        f"max_tokens, held while a request runs); this request needs {amount} and "
        f"{max(0, math.floor(level))} are left"
    )


def retry_after_header(seconds: float) -> str:
    """Retry-After in whole seconds, never 0."""
    return str(max(1, math.ceil(seconds)))
