"""The spec rejects bad input clearly; the publish gate applies a team's policy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tailor.stages.evaluate.spec import (
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


def _report(
    em: tuple[float, float] | None,
    pass1: tuple[float, float] | None,
    *,
    loss: tuple[float, float] | None = (2.0, 1.6),
    edit: tuple[float, float, float] = (0.20, 0.30, 0.04),
) -> EvalReport:
    """em, pass1 and loss as (base, adapter); edit as (base, adapter, CI lower end)."""
    rows = [
        Comparison(
            metric="fim.edit_similarity", base=edit[0], adapter=edit[1],
            delta=edit[1] - edit[0], ci_low=edit[2], ci_high=edit[1] - edit[0] + 0.1, n=200,
        )
    ]  # fmt: skip
    for metric, pair, n in (("fim.exact_match", em, 200), ("humaneval.pass@1", pass1, 164)):
        if pair is not None:
            rows.append(
                Comparison(
                    metric=metric, base=pair[0], adapter=pair[1], delta=pair[1] - pair[0], n=n
                )
            )
    if loss is not None:
        rows.append(
            Comparison(metric="eval_loss", base=loss[0], adapter=loss[1], delta=loss[1] - loss[0])
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


def test_the_default_gate_passes_a_better_adapter_that_kept_general_coding() -> None:
    decision = check_gate(_report((0.30, 0.42), (0.20, 0.19)), GatePolicy())
    assert decision.passed
    assert len(decision.reasons) == 3  # loss, edit similarity, HumanEval


def test_the_default_gate_refuses_an_adapter_that_raised_the_held_out_loss() -> None:
    decision = check_gate(_report(None, None, loss=(6.64, 6.86)), GatePolicy())
    assert not decision.passed
    assert decision.reasons[0].startswith("held-out eval loss FAILED: adapter 6.860 vs base 6.640")


def test_the_default_gate_refuses_an_adapter_surely_worse_on_the_team_code() -> None:
    report = _report(None, None, edit=(0.035, 0.006, -0.05))
    decision = check_gate(report, GatePolicy())
    assert not decision.passed
    assert "FIM edit similarity FAILED" in decision.reasons[1]
    assert "95% CI from -5.0, needs ≥ -2.0" in decision.reasons[1]


def test_an_adapter_as_good_as_its_base_within_the_margin_passes() -> None:
    assert check_gate(_report(None, None, edit=(0.20, 0.20, -0.015)), GatePolicy()).passed


def test_an_evaluation_without_eval_loss_is_refused_unless_the_policy_allows_it() -> None:
    report = _report(None, None, loss=None)
    assert "the gate needs it" in check_gate(report, GatePolicy()).reasons[0]
    assert check_gate(report, GatePolicy(require_eval_loss=False)).passed


def test_an_exact_match_bar_applies_only_when_the_team_sets_one() -> None:
    report = _report((0.30, 0.25), None)
    assert check_gate(report, GatePolicy()).passed
    decision = check_gate(report, GatePolicy(min_fim_exact_match_delta_points=0.0))
    assert not decision.passed
    assert "FIM exact match FAILED" in decision.reasons[2] and "-5.0 points" in decision.reasons[2]


def test_gate_fails_an_adapter_that_forgot_more_than_two_points_of_humaneval() -> None:
    decision = check_gate(_report((0.30, 0.40), (0.20, 0.17)), GatePolicy())
    assert not decision.passed
    assert "HumanEval pass@1 FAILED" in decision.reasons[2]


def test_gate_allows_a_drop_of_exactly_the_allowed_points() -> None:
    assert check_gate(_report((0.3, 0.3), (0.25, 0.23)), GatePolicy()).passed


def test_gate_without_humaneval_passes_unless_the_policy_requires_it() -> None:
    report = _report((0.3, 0.4), None)
    assert check_gate(report, GatePolicy()).passed
    strict = check_gate(report, GatePolicy(require_humaneval=True))
    assert not strict.passed
    assert "requires" in strict.reasons[2]


def test_gate_fails_a_base_only_evaluation() -> None:
    report = _report((0.3, 0.4), None).model_copy(update={"adapter": None})
    decision = check_gate(report, GatePolicy())
    assert not decision.passed
    assert "no adapter" in decision.reasons[0]


def test_report_round_trips_through_json() -> None:
    report = _report((0.3, 0.4), (0.2, 0.2))
    assert EvalReport.model_validate_json(report.model_dump_json()) == report
