"""A harvest fanned out over the workers: parts claimed in the database, files in the store.

The harvest's own task (the coordinator) plans one part per repository, records the parts
(`harvest_parts`), has a part task sent for each, and waits for them, running queued parts
itself meanwhile (so a worker with a single process still finishes the harvest). A part is
claimed by the process running it, with a heartbeat, as a job is: the claim of a worker that
died is free again, so a worker killed mid-part costs that part's re-run (by its redelivered
task or by the coordinator) and nothing else. When every part is done or failed, the
coordinator reduces (`tailor.stages.harvest.parts`) and the job ends as a single task's does.

A cancel reaches every part: part tasks poll the job's cancel flag between batches and while
git runs, the coordinator's watch stops the coordinator, and each part removes what it wrote.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.db.base import utcnow
from tailor.db.models import HarvestPart, Job
from tailor.jobs import service as jobs
from tailor.jobs.recorder import JobRecorder
from tailor.jobs.workers import is_alive, this_worker
from tailor.stages.harvest.gather import FetchLimits
from tailor.stages.harvest.parts import (
    harvest_part,
    part_prefix,
    plan_parts,
    planned_source,
    reduce_parts,
    write_plan,
)
from tailor.stages.harvest.pipeline import (
    HarvestCancelled,
    HarvestError,
    HarvestResult,
    Reporter,
)
from tailor.stages.harvest.previous import load_previous
from tailor.stages.harvest.spec import HarvestSpec, RepoSource
from tailor.stages.harvest.urls import UrlPolicy
from tailor.storage import ObjectStore

log = logging.getLogger("tailor.harvest")
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
# Share of the progress bar the parts fill; the reduce fills the rest.
PARTS_SHARE = 0.85
Dispatch = Callable[[int], None]


@dataclass(frozen=True)
class HarvestContext:
    """A harvest job as read at its start: what the coordinator and every part need."""

    job_id: int
    spec: HarvestSpec
    sources: list[RepoSource]
    previous: list[str]
    dataset_id: int
    team: str
    dataset_uid: str
    cache_dir: Path

    @property
    def output(self) -> str:
        return f"teams/{self.team}/datasets/{self.dataset_uid}/"


def record_parts(sessions: sessionmaker[Session], job_id: int, parts: list[RepoSource]) -> bool:
    """One row per part; False when an earlier attempt of the coordinator recorded them."""
    with sessions.begin() as session:
        jobs.lock_job(session, job_id)  # two coordinators of one job record the parts once
        if session.scalars(select(HarvestPart.id).where(HarvestPart.job_id == job_id)).first():
            return False
        session.add_all(
            HarvestPart(job_id=job_id, index=i, repository=p.name) for i, p in enumerate(parts)
        )
        return True


def claim_part(
    sessions: sessionmaker[Session], job_id: int, stale_after_s: float, index: int | None = None
) -> int | None:
    """Claim part `index` (any free one when None) for this process; its index, or None.

    A part is free when queued, cancelled, or claimed by a worker that is gone. The claim is
    a compare-and-set on (state, runs): of two processes claiming at once, one wins.
    """
    query = (
        select(HarvestPart)
        .where(HarvestPart.job_id == job_id)
        .where(HarvestPart.state.in_([QUEUED, RUNNING, CANCELLED]))
        .order_by(HarvestPart.index)
    )
    if index is not None:
        query = query.where(HarvestPart.index == index)
    with sessions() as session:
        candidates = [
            (p.id, p.index, p.state, p.runs)
            for p in session.scalars(query)
            if p.state != RUNNING or not is_alive(p.worker, p.heartbeat_at, stale_after_s)
        ]
    worker = this_worker()
    for part_id, part_index, state, runs in candidates:
        with sessions.begin() as session:
            claimed = session.execute(
                update(HarvestPart)
                .where(HarvestPart.id == part_id, HarvestPart.state == state)
                .where(HarvestPart.runs == runs)
                .values(state=RUNNING, worker=worker, heartbeat_at=utcnow(), runs=runs + 1)
            )
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                part = session.get_one(HarvestPart, part_id)
                message = f"part {part_index} ({part.repository}) run {runs + 1} started"
                jobs.log(session, session.get_one(Job, job_id), message)
                return part_index
    return None


def _update(
    sessions: sessionmaker[Session], job_id: int, index: int, **values: object
) -> HarvestPart | None:
    """Set `values` on part `index` while this process holds it; the part, or None."""
    with sessions.begin() as session:
        part = session.scalars(
            select(HarvestPart).where(HarvestPart.job_id == job_id, HarvestPart.index == index)
        ).one()
        if part.worker != this_worker() or part.state != RUNNING:
            return None  # taken over meanwhile: the new holder reports
        for key, value in values.items():
            setattr(part, key, value)
        if "state" in values:
            message = f"part {index} ({part.repository}) {values['state']}"
            error = values.get("error")
            level = "warning" if error else "info"
            jobs.log(
                session,
                session.get_one(Job, job_id),
                f"{message}: {error}" if error else message,
                level,
            )
        return part


def run_claimed_part(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    settings: Settings,
    ctx: HarvestContext,
    index: int,
    cancelled: Callable[[], bool],
) -> None:
    """Harvest part `index` (claimed by this process) and record how it ended."""
    last_beat = [time.monotonic()]

    def alive() -> None:
        if time.monotonic() - last_beat[0] >= settings.job_heartbeat_s:
            last_beat[0] = time.monotonic()
            _update(sessions, ctx.job_id, index, heartbeat_at=utcnow())

    prefix = part_prefix(ctx.team, ctx.dataset_uid, index)
    try:
        source = planned_source(store, ctx.team, ctx.dataset_uid, index, ctx.sources)
        harvest_part(
            ctx.spec,
            source,
            store,
            team=ctx.team,
            dataset_id=ctx.dataset_uid,
            index=index,
            cache_dir=ctx.cache_dir,
            limits=FetchLimits(
                settings.harvest_timeout_s,
                settings.harvest_max_repo_mb << 20,
                UrlPolicy.of(settings),
            ),
            cancelled=cancelled,
            alive=alive,
        )
    except HarvestCancelled:
        store.delete_prefix(prefix)
        _update(sessions, ctx.job_id, index, state=CANCELLED)
        return
    except HarvestError as exc:
        _update(sessions, ctx.job_id, index, state=FAILED, error=str(exc)[:4000])
        return
    except Exception as exc:  # one repository's surprise fails its part, not the harvest
        log.exception("part %s of job %s failed", index, ctx.job_id)
        reason = f"unexpected error: {type(exc).__name__}: {exc}"
        _update(sessions, ctx.job_id, index, state=FAILED, error=reason[:4000])
        return
    if cancelled():  # cancelled while the part wrote: the coordinator may have cleaned already
        store.delete_prefix(prefix)
        _update(sessions, ctx.job_id, index, state=CANCELLED)
        return
    _update(sessions, ctx.job_id, index, state=DONE)


def _states(sessions: sessionmaker[Session], job_id: int) -> list[HarvestPart]:
    with sessions() as session:
        return list(
            session.scalars(
                select(HarvestPart).where(HarvestPart.job_id == job_id).order_by(HarvestPart.index)
            )
        )


def run_fanout(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    settings: Settings,
    ctx: HarvestContext,
    recorder: JobRecorder,
    dispatch: Dispatch,
) -> HarvestResult:
    """The coordinator: plan, dispatch and wait for the parts (running free ones), reduce."""
    reporter = Reporter(recorder.progress, recorder.cancelled)
    try:
        previous = load_previous(store, ctx.team, ctx.previous, ctx.spec.dedup)
        parts = plan_parts(ctx.sources, previous)
        write_plan(store, ctx.team, ctx.dataset_uid, parts)
        if record_parts(sessions, ctx.job_id, parts):
            for i in range(len(parts)):
                dispatch(i)
        failures = _wait_for_parts(sessions, store, settings, ctx, recorder, reporter, len(parts))
        return reduce_parts(
            ctx.spec,
            store,
            team=ctx.team,
            dataset_id=ctx.dataset_uid,
            parts=parts,
            failures=failures,
            previous=previous,
            reporter=reporter,
        )
    except (HarvestCancelled, HarvestError):  # no dataset: the parts' files go too
        store.delete_prefix(ctx.output)
        raise


def _wait_for_parts(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    settings: Settings,
    ctx: HarvestContext,
    recorder: JobRecorder,
    reporter: Reporter,
    total: int,
) -> dict[int, str]:
    """Until every part ended: the failed ones' reasons by index."""
    reported = -1
    while True:
        states = _states(sessions, ctx.job_id)
        ended = [p for p in states if p.state in (DONE, FAILED)]
        if len(ended) != reported:
            reported = len(ended)
            recorder.progress(
                PARTS_SHARE * reported / max(total, 1), f"{reported}/{total} parts done"
            )
        if len(ended) == total:
            return {p.index: p.error or "the part failed" for p in ended if p.state == FAILED}
        reporter.check()
        index = claim_part(sessions, ctx.job_id, settings.job_stale_after_s)
        if index is not None:
            run_claimed_part(sessions, store, settings, ctx, index, recorder.cancelled)
        else:
            time.sleep(settings.harvest_part_poll_s)
