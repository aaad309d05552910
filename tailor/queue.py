"""Celery configuration shared by the worker and by everything that sends it tasks."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from sqlalchemy import event
from sqlalchemy.orm import Session

from tailor.config import Settings

TASK_MODULES = ["worker.tasks"]
log = logging.getLogger("tailor.queue")
RESYNC_TASK = "tailor.team.resync"
# Rebuild a team's code index (repository context) after a harvest or a repository's removal.
CONTEXT_TASK = "tailor.context.build"
# One repository of a fanned-out harvest (`tailor.services.datasets.fanout`); a wire contract
# too, and time-limited as harvests are.
HARVEST_PART_TASK = "tailor.harvest.part"
# Job kinds and the Celery task that runs each (the worker registers them by these names; they
# are a wire contract with messages already queued, so they keep their names when code moves).
TASKS = {
    "harvest": "tailor.harvest",
    "finetune": "tailor.finetune",
    "evaluation": "tailor.evaluate",
    "adapter-compose": "tailor.adapter.compose",
    "adapter-transfer": "tailor.adapter.transfer",
    "adapter-import": "tailor.adapter.import",
    "adapter-export": "tailor.adapter.export",
    "served-check": "tailor.endpoint.served_check",
}


def celery_config(settings: Settings) -> dict[str, Any]:
    """Broker, backend and delivery guarantees for every Tailor task."""
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        # A task is acknowledged only once it finished, and a worker killed mid-task gives
        # it back to the queue: harvests survive a crashed or evicted worker.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,  # state lives in the jobs table, not in Celery results
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": _transport_options(settings),
        "task_annotations": time_limits(settings),
        "beat_schedule": beat_schedule(settings),
    }


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Periodic tasks Celery beat sends: in cluster mode, the teams' resync."""
    if settings.executor != "kubernetes":
        return {}
    return {
        "team-resync": {
            "task": RESYNC_TASK,
            "schedule": settings.team_resync_interval_s,
        }
    }


def time_limits(settings: Settings) -> dict[str, dict[str, int]]:
    """Each job task's soft time limit (the job stops and fails with a reason) and hard one
    (the worker process is killed: the backstop for a task that cannot stop)."""
    limits = {}
    for kind, task in TASKS.items():
        soft = settings.time_limit_s(kind)
        limits[task] = {"soft_time_limit": soft, "time_limit": soft + settings.time_limit_grace_s}
    limits[HARVEST_PART_TASK] = limits[TASKS["harvest"]]
    return limits


def _transport_options(settings: Settings) -> dict[str, Any]:
    # Only Redis-like brokers know a visibility timeout; kombu's SQLAlchemy transport would
    # hand the option to create_engine and fail.
    if settings.broker_url.split(":", 1)[0] in {"redis", "rediss", "sentinel"}:
        return {"visibility_timeout": settings.broker_visibility_timeout_s}
    return {}


def make_sender(settings: Settings) -> Celery:
    """A Celery app that only sends tasks by name (the API never imports the worker's code)."""
    app = Celery("tailor")
    app.conf.update(celery_config(settings))
    return app


def send_after_commit(session: Session, sender: Celery, task: str, *args: Any) -> None:
    """Send `task` once the session's transaction commits; drop it if it rolls back."""
    pending: list[tuple[str, tuple[Any, ...]]] = session.info.setdefault("tailor_tasks", [])
    pending.append((task, args))
    if session.info.get("tailor_tasks_hooked"):
        return
    session.info["tailor_tasks_hooked"] = True

    @event.listens_for(session, "after_commit")
    def _send(sess: Session) -> None:
        for name, task_args in sess.info.pop("tailor_tasks", []):
            try:
                sender.send_task(name, args=list(task_args))
            except Exception:
                # The change is committed; the job stays queued and visible, so report the
                # broker problem instead of failing a request that already succeeded.
                log.exception("could not send task %s%s to the broker", name, task_args)

    @event.listens_for(session, "after_rollback")
    def _drop(sess: Session) -> None:
        sess.info.pop("tailor_tasks", None)
