"""What workload status means for Tailor's resources: pure decisions."""

from __future__ import annotations

from typing import Any

from tailor_operator import status


def job(suspend: bool = False, **job_status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "ft-1"}, "spec": {"suspend": suspend}, "status": job_status}


def condition(type_: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": "True", "reason": reason, "message": message}


def test_a_suspended_job_waits_for_quota_under_kueue() -> None:
    observed = status.observe_job(job(suspend=True), user_suspended=False, queued_by_kueue=True)

    assert (observed.phase, observed.reason) == ("Queued", "WaitingForQuota")
    assert observed.conditions["Admitted"][0] is False


def test_a_user_suspension_is_not_mistaken_for_queueing() -> None:
    observed = status.observe_job(job(suspend=True), user_suspended=True, queued_by_kueue=True)

    assert (observed.phase, observed.reason) == ("Suspended", "SuspendedByUser")


def test_active_pods_mean_running() -> None:
    observed = status.observe_job(job(active=2), user_suspended=False, queued_by_kueue=True)

    assert observed.phase == "Running"
    assert observed.conditions["Admitted"][0] is True


def test_the_spec_error_exit_code_becomes_invalid_spec() -> None:
    failed = condition(
        "Failed", "PodFailurePolicy", "Container trainer for pod a/b failed with exit code 3 "
    )

    observed = status.observe_job(job(conditions=[failed]), False, True)

    assert (observed.phase, observed.reason) == ("Failed", "InvalidSpec")
    assert observed.conditions["Failed"] == (True, "InvalidSpec", failed["message"])


def test_exhausted_retries_read_as_such() -> None:
    failed = condition("Failed", "BackoffLimitExceeded", "Job has reached the backoff limit")

    observed = status.observe_job(job(conditions=[failed]), False, True)

    assert observed.reason == "RetriesExhausted"


def test_other_exit_codes_under_the_policy_keep_the_kubernetes_reason() -> None:
    failed = condition("Failed", "PodFailurePolicy", "failed with exit code 30 matching")

    assert status.observe_job(job(conditions=[failed]), False, True).reason == "PodFailurePolicy"


def test_transition_times_survive_unchanged_conditions() -> None:
    first = status.finetune_status(
        status.observe_job(job(active=1), False, True), {}, "ft-1", "2026-01-01T00:00:00Z"
    )
    second = status.finetune_status(
        status.observe_job(job(active=1), False, True), first, "ft-1", "2026-01-01T00:05:00Z"
    )

    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times["Running"] == "2026-01-01T00:00:00Z"
    assert not status.changed(first, second)


def test_a_finished_job_changes_the_status() -> None:
    running = status.finetune_status(status.observe_job(job(active=1), False, True), {}, "j", "t")
    done = status.finetune_status(
        status.observe_job(
            job(conditions=[condition("Complete", "CompletionsReached")]), False, True
        ),
        running,
        "j",
        "t2",
    )

    assert status.changed(running, done)
    running_condition = next(c for c in done["conditions"] if c["type"] == "Running")
    assert (running_condition["status"], running_condition["lastTransitionTime"]) == ("False", "t2")


def test_a_deployment_is_ready_only_when_every_replica_runs_the_new_template() -> None:
    rolling = {"status": {"readyReplicas": 2, "updatedReplicas": 1}}
    rolled = {"status": {"readyReplicas": 2, "updatedReplicas": 2}}

    assert status.observe_deployment(rolling, wanted=2).phase == "Progressing"
    assert status.observe_deployment(rolled, wanted=2).phase == "Ready"


def test_a_stuck_rollout_is_a_failure_with_the_reason() -> None:
    stuck = {
        "status": {
            "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
            ]
        }
    }

    observed = status.observe_deployment(stuck, wanted=1)

    assert (observed.phase, observed.reason) == ("Failed", "ProgressDeadlineExceeded")


def test_a_deployment_the_controller_has_not_seen_yet_is_still_rolling() -> None:
    changed = {
        "metadata": {"generation": 3},
        "status": {"observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 2},
    }

    assert status.observe_deployment(changed, wanted=2).phase == "Progressing"
