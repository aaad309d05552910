"""The publish gate: a team's policy (the defaults when it set none) applied to a version's
stored evaluation."""

from __future__ import annotations

from typing import Any

from tailor.stages.evaluate.spec import EvalReport, GatePolicy, check_gate


def team_policy(stored: dict[str, Any]) -> GatePolicy:
    """The policy a team's publishes are checked against: what it set, else the defaults."""
    return GatePolicy.model_validate(stored or {})


def evaluation_gate(policy: dict[str, Any], evaluation: dict[str, Any]) -> list[str]:
    """Why `evaluation` fails the team's `policy`; empty when it passes."""
    if not evaluation:
        return ["this version has not been evaluated: run an evaluation first"]
    decision = check_gate(EvalReport.model_validate(evaluation), team_policy(policy))
    return [] if decision.passed else decision.reasons
