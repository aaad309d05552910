"""The spec rejects bad input clearly; the publish gate applies a team's policy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tailor.evaluate.spec import (
    Comparison,
    EvalReport,
    EvalSpec,
    GatePolicy,
    ModelScores,
    check_gate,
)


def _spec(**extra: object) -> EvalSpec:
    return EvalSpec.model_validate(
        {"team": "acme", "base_model": "tiny-base", "dataset_id": "ds1", **extra}
    )


def _report(em: tuple[float, float] | None, pass1: tuple[float, float] | None) -> EvalReport:
    rows = []
    if em is not None:
        rows.append(
            Comparison(
                metric="fim.exact_match", base=em[0], adapter=em[1], delta=em[1] - em[0], n=200
            )
        )
    if pass1 is not None:
        rows.append(
            Comparison(
                metric="humaneval.pass@1",
                base=pass1[0],
                adapter=pass1[1],
                delta=pass1[1] - pass1[0],
                n=164,
            )
        )
    return EvalReport(
        spec=_spec(adapter="teams/acme/adapters/style/1/"),
        base=ModelScores(label="base"),
        adapter=ModelScores(label="adapter"),
        comparison=rows,
    )


def test_an_adapter_of_another_team_is_refused() -> None:
    with pytest.raises(ValidationError, match="teams/acme/adapters"):
        _spec(adapter="teams/globex/adapters/style/1/")


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        _spec(humaneval={"subset": 10, "sample": 3})


def test_sampling_several_completions_greedily_is_refused() -> None:
    with pytest.raises(ValidationError, match="temperature"):
        _spec(humaneval={"n_samples": 10, "temperature": 0.0})


def test_subset_beyond_the_164_problems_is_refused() -> None:
    with pytest.raises(ValidationError, match="164"):
        _spec(humaneval={"subset": 165})


def test_gate_passes_a_better_adapter_that_kept_general_coding() -> None:
    decision = check_gate(_report((0.30, 0.42), (0.20, 0.19)), GatePolicy())
    assert decision.passed
    assert len(decision.reasons) == 2


def test_gate_fails_an_adapter_worse_on_the_team_code() -> None:
    decision = check_gate(_report((0.30, 0.25), (0.20, 0.20)), GatePolicy())
    assert not decision.passed
    assert "FIM exact match FAILED" in decision.reasons[0]
    assert "-5.0 points" in decision.reasons[0]


def test_gate_fails_an_adapter_that_forgot_more_than_two_points_of_humaneval() -> None:
    decision = check_gate(_report((0.30, 0.40), (0.20, 0.17)), GatePolicy())
    assert not decision.passed
    assert "HumanEval pass@1 FAILED" in decision.reasons[1]


def test_gate_allows_a_drop_of_exactly_the_allowed_points() -> None:
    assert check_gate(_report((0.3, 0.3), (0.25, 0.23)), GatePolicy()).passed


def test_gate_without_humaneval_passes_unless_the_policy_requires_it() -> None:
    report = _report((0.3, 0.4), None)
    assert check_gate(report, GatePolicy()).passed
    strict = check_gate(report, GatePolicy(require_humaneval=True))
    assert not strict.passed
    assert "requires" in strict.reasons[1]


def test_gate_fails_a_base_only_evaluation() -> None:
    report = _report((0.3, 0.4), None).model_copy(update={"adapter": None})
    decision = check_gate(report, GatePolicy())
    assert not decision.passed
    assert "no adapter" in decision.reasons[0]


def test_report_round_trips_through_json() -> None:
    report = _report((0.3, 0.4), (0.2, 0.2))
    assert EvalReport.model_validate_json(report.model_dump_json()) == report
