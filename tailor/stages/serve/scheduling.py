"""Who joins the engine's batch next: max-min fair shares of the batch's rows between teams.

A team alone gets every row (work conserving). When several teams wait, each free row goes to
the waiting team that holds the fewest rows, ties to the one waiting longest. When the batch
is full and a waiting team holds at least two rows fewer than another, the other team's least
advanced row steps aside for it (vLLM's preemption; the engine swaps the row's cache out and
back in) and rejoins at the front of its team's queue. So one team's burst of long,
many-choice requests delays another team's request by a step, not by the burst's length, and
the batch settles at shares that differ by at most one row. Without `fair`, every team shares
one queue: first come, first served (the engine before this scheduler, the bench's baseline).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar


class Schedulable(Protocol):
    """A choice as the scheduler sees it."""

    @property
    def team(self) -> str: ...
    @property
    def serial(self) -> int:
        """Arrival order (smaller came first)."""
        ...

    @property
    def progress(self) -> int:
        """Tokens its cache holds (prompt plus generated): what stepping aside sets aside."""
        ...


S = TypeVar("S", bound=Schedulable)


@dataclass
class Plan(Generic[S]):
    """What one scheduling round decided: rows to prefill now, running rows to step aside."""

    admit: list[S] = field(default_factory=list)
    preempt: list[S] = field(default_factory=list)


class FairScheduler(Generic[S]):
    """Waiting choices in one queue per team; `plan` shares the batch's rows between them.

    Owned by the engine's worker thread (not thread-safe).
    """

    def __init__(self, *, fair: bool = True) -> None:
        self.fair = fair
        self._queues: dict[str, deque[S]] = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def push(self, item: S, *, front: bool = False) -> None:
        """Queue a choice; `front` for a preempted one (it started before the others)."""
        queue = self._queues.setdefault(self._key(item), deque())
        if front:
            queue.appendleft(item)
        else:
            queue.append(item)

    def remove_if(self, drop: Callable[[S], bool]) -> list[S]:
        """Take out and return every waiting choice `drop` says to (cancelled, expired)."""
        gone: list[S] = []
        for key, queue in list(self._queues.items()):
            keep: deque[S] = deque()
            for item in queue:
                (gone if drop(item) else keep).append(item)
            if len(keep) < len(queue):
                self._set(key, keep)
        return gone

    def plan(self, running: Sequence[S], capacity: int, ready: Callable[[S], bool]) -> Plan[S]:
        """Fill free rows fairly, then preempt where one team holds 2+ rows more than a waiting
        one; the admitted choices leave the queues (the preempted are not queued here)."""
        plan: Plan[S] = Plan()
        if not self._queues:
            return plan
        rows = Counter(self._key(r) for r in running)
        heads = _Heads({k: (s for s in q if ready(s)) for k, q in self._queues.items()})
        free = capacity - len(running)
        while free > 0 and heads:
            plan.admit.append(self._take(heads, rows, self._neediest(heads, rows)))
            free -= 1
        if heads and self.fair:
            self._rebalance(running, rows, heads, plan)
        for item in plan.admit:
            key = self._key(item)
            queue = self._queues[key]
            queue.remove(item)
            self._set(key, queue)
        return plan

    def _rebalance(
        self, running: Sequence[S], rows: Counter[str], heads: _Heads[S], plan: Plan[S]
    ) -> None:
        # Each team's running rows, least advanced last (popped first: the least work lost).
        movable: dict[str, list[S]] = {k: [] for k in rows}
        for row in sorted(running, key=lambda r: r.progress, reverse=True):
            movable[self._key(row)].append(row)
        while heads:
            needy = self._neediest(heads, rows)
            rich = max((k for k in movable if movable[k]), key=lambda k: rows[k], default=None)
            if rich is None or rows[rich] < rows[needy] + 2:
                return
            plan.preempt.append(movable[rich].pop())  # the least advanced: the least set aside
            rows[rich] -= 1
            plan.admit.append(self._take(heads, rows, needy))

    @staticmethod
    def _neediest(heads: _Heads[S], rows: Counter[str]) -> str:
        """The team that gets the next row: fewest rows held, then the longest waiting."""
        return min(heads.first, key=lambda k: (rows[k], heads.first[k].serial))

    @staticmethod
    def _take(heads: _Heads[S], rows: Counter[str], key: str) -> S:
        rows[key] += 1
        return heads.take(key)

    def _key(self, item: S) -> str:
        return item.team if self.fair else ""

    def _set(self, key: str, queue: deque[S]) -> None:
        if queue:
            self._queues[key] = queue
        else:
            self._queues.pop(key, None)


class _Heads(Generic[S]):
    """The first ready choice of each team's queue, advanced as choices are taken."""

    def __init__(self, streams: dict[str, Iterator[S]]) -> None:
        self._streams = streams
        self.first: dict[str, S] = {}
        for key in streams:
            self._advance(key)

    def __bool__(self) -> bool:
        return bool(self.first)

    def take(self, key: str) -> S:
        item = self.first[key]
        self._advance(key)
        return item

    def _advance(self, key: str) -> None:
        item = next(self._streams[key], None)
        if item is None:
            self.first.pop(key, None)
        else:
            self.first[key] = item
