"""The publish gate: a team's policy applied to a version's stored evaluation."""

from __future__ import annotations

from typing import Any

from tailor.evaluate.spec import EvalReport, GatePolicy, check_gate


def evaluation_gate(policy: dict[str, Any], evaluation: dict[str, Any]) -> list[str]:
    """Why `evaluation` fails the team's `policy`; empty when it passes."""
    if not evaluation:
        return ["this version has not been evaluated: run an evaluation first"]
    decision = check_gate(EvalReport.model_validate(evaluation), GatePolicy.model_validate(policy))
    return [] if decision.passed else decision.reasons
