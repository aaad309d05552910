"""The batch's rows shared between teams: max-min fair, work conserving, preempting a burst."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count

from tailor.stages.serve.scheduling import FairScheduler

_serials = count(1)


@dataclass(eq=False)
class Choice:
    team: str
    progress: int = 10
    startable: bool = True
    serial: int = 0

    def __post_init__(self) -> None:
        self.serial = next(_serials)


def queue(scheduler: FairScheduler[Choice], team: str, n: int, **kw: object) -> list[Choice]:
    items = [Choice(team, **kw) for _ in range(n)]  # type: ignore[arg-type]
    for item in items:
        scheduler.push(item)
    return items


def teams(items: list[Choice]) -> list[str]:
    return [i.team for i in items]


def startable(c: Choice) -> bool:
    return c.startable


def test_a_team_alone_gets_the_whole_batch() -> None:
    scheduler: FairScheduler[Choice] = FairScheduler()
    queue(scheduler, "flood", 10)
    plan = scheduler.plan([], 4, startable)
    assert teams(plan.admit) == ["flood"] * 4 and plan.preempt == []


def test_free_rows_go_to_the_team_holding_fewest() -> None:
    scheduler: FairScheduler[Choice] = FairScheduler()
    running = [Choice("flood") for _ in range(2)]
    queue(scheduler, "flood", 5)  # came first
    queue(scheduler, "ide", 1)
    plan = scheduler.plan(running, 4, startable)
    assert teams(plan.admit) == ["ide", "flood"]


def test_a_full_batch_makes_room_for_a_team_with_no_row() -> None:
    scheduler: FairScheduler[Choice] = FairScheduler()
    running = [Choice("flood", progress=p) for p in (300, 50, 200, 120)]
    queue(scheduler, "flood", 8)
    (ide,) = queue(scheduler, "ide", 1)
    plan = scheduler.plan(running, 4, startable)
    assert plan.admit == [ide]
    assert plan.preempt == [running[1]]  # the least advanced row: the least cache set aside


def test_two_bursts_settle_at_equal_shares() -> None:
    scheduler: FairScheduler[Choice] = FairScheduler()
    running = [Choice("flood") for _ in range(8)]
    queue(scheduler, "flood", 20)
    queue(scheduler, "batch", 20)
    plan = scheduler.plan(running, 8, startable)
    assert teams(plan.admit) == ["batch"] * 4 and len(plan.preempt) == 4


def test_shares_one_row_apart_are_left_alone() -> None:
    scheduler: FairScheduler[Choice] = FairScheduler()
    running = [Choice("a"), Choice("a"), Choice("a"), Choice("b"), Choice("b")]
    queue(scheduler, "b", 3)
    plan = scheduler.plan(running, 5, startable)
    assert plan.admit == [] and plan.preempt == []  # 3 vs 2: moving a row would not help


def test_a_preempted_choice_goes_first_when_its_team_gets_a_row_again() -> None:
    scheduler: FairScheduler[Choice] = FairScheduler()
    queue(scheduler, "flood", 2)
    preempted = Choice("flood")
    scheduler.push(preempted, front=True)
    assert scheduler.plan([], 1, startable).admit == [preempted]


def test_a_choice_whose_adapter_is_not_downloaded_waits_without_blocking_its_team() -> None:
    scheduler: FairScheduler[Choice] = FairScheduler()
    cold = queue(scheduler, "ide", 1, startable=False)
    (warm,) = queue(scheduler, "ide", 1)
    plan = scheduler.plan([], 4, startable)
    assert plan.admit == [warm] and len(scheduler) == 1
    cold[0].startable = True
    assert scheduler.plan([warm], 4, startable).admit == cold


def test_without_fairness_choices_start_first_come_first_served() -> None:
    scheduler: FairScheduler[Choice] = FairScheduler(fair=False)
    running = [Choice("flood") for _ in range(4)]
    queue(scheduler, "flood", 3)
    queue(scheduler, "ide", 1)
    assert scheduler.plan(running, 4, startable).admit == []
    assert teams(scheduler.plan(running[:1], 4, startable).admit) == ["flood"] * 3


def test_removed_choices_leave_their_queues() -> None:
    scheduler: FairScheduler[Choice] = FairScheduler()
    a, b = queue(scheduler, "ide", 2)
    assert scheduler.remove_if(lambda c: c is a) == [a]
    assert scheduler.plan([], 4, startable).admit == [b] and len(scheduler) == 0
