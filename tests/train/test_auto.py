"""Hyperparameters left auto: chosen from the dataset's and the base's size, and recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tailor.stages.train.auto import MAX_EPOCHS, MAX_STEPS, MIN_STEPS, choose
from tailor.stages.train.entrypoint import run_training
from tailor.stages.train.spec import TrainSpec
from tailor.storage import FileStore
from tests.train.conftest import make_spec

AUTO = {
    "epochs": "auto",
    "learning_rate": "auto",
    "lora_r": "auto",
    "lora_alpha": "auto",
    "lora_target_modules": "auto",
}
BLOCKS = ["c_attn", "c_proj", "c_fc"]  # gpt_bigcode's attention and MLP projections


def _spec(**changes: Any) -> TrainSpec:
    fields = {"base_model": "b", "team": "acme", "dataset_id": "d", "adapter_name": "a"}
    return TrainSpec.model_validate(fields | {"method": "lora", "seq_len": 1024} | changes)


def test_a_spec_that_says_nothing_leaves_every_hyperparameter_to_tailor() -> None:
    spec = _spec()
    chosen_later = (spec.epochs, spec.learning_rate, spec.lora_r, spec.lora_alpha)
    assert chosen_later == (None,) * 4 and spec.lora_target_modules is None
    assert _spec(**AUTO) == spec


def test_a_small_repository_gets_more_epochs_to_reach_enough_steps() -> None:
    chosen = choose(_spec(), train_tokens=100_000, base_params=None)  # 12.2 steps an epoch
    assert chosen.steps is not None and chosen.epochs is not None
    assert chosen.epochs > 3 and chosen.steps >= MIN_STEPS
    assert chosen.auto == list(AUTO)


def test_a_tiny_repository_stops_at_the_epoch_cap() -> None:
    chosen = choose(_spec(), train_tokens=2_000, base_params=None)
    assert chosen.epochs == MAX_EPOCHS and chosen.steps is not None and chosen.steps < MIN_STEPS


def test_a_large_dataset_gets_fewer_epochs_and_bounded_steps() -> None:
    chosen = choose(_spec(), train_tokens=20_000_000, base_params=None)
    assert chosen.epochs is not None and 1.0 < chosen.epochs < 3
    assert chosen.steps is not None and 0.99 * MAX_STEPS <= chosen.steps <= MAX_STEPS


def test_a_huge_dataset_is_still_read_once() -> None:
    chosen = choose(_spec(), train_tokens=200_000_000, base_params=None)
    assert chosen.epochs == 1.0 and chosen.steps == 200_000_000 // 8192


def test_the_rank_grows_with_the_data() -> None:
    ranks = [choose(_spec(), t, None).lora_r for t in (10_000, 5_000_000, 50_000_000, 10**9)]
    assert ranks == [8, 16, 32, 64]
    assert choose(_spec(), 10_000, None).lora_alpha == 16


def test_a_smaller_base_takes_a_larger_learning_rate_within_bounds() -> None:
    rates = [choose(_spec(), 10_000, p).learning_rate for p in (4_000_000, 10**9, 7 * 10**9)]
    assert rates == [3e-3, 2e-4, 1e-4]
    full = choose(_spec(method="full"), 10_000, 10**9).learning_rate
    assert full == pytest.approx(2e-5)


def test_a_small_base_has_its_output_head_adapted_too() -> None:
    tiny = choose(_spec(), 10_000, 917_504, model_type="gpt_bigcode", head_share=0.57)
    assert tiny.lora_target_modules == [*BLOCKS, "lm_head"]
    assert "output head adapted (57% of the base's weights)" in tiny.reason


def test_an_adapted_output_head_gets_a_rank_of_at_least_32() -> None:
    tiny = choose(_spec(), 10_000, 917_504, model_type="gpt_bigcode", head_share=0.57)
    real = choose(_spec(), 10_000, 10**9, model_type="gpt_bigcode", head_share=0.09)
    assert (tiny.lora_r, tiny.lora_alpha, real.lora_r) == (32, 64, 8)
    assert "rank 32" in tiny.reason


def test_a_real_code_model_keeps_the_attention_and_mlp_targets() -> None:
    # StarCoderBase-1B: a 49,152 x 2,048 head is 9 % of its weights.
    chosen = choose(_spec(), 10_000, 10**9, model_type="gpt_bigcode", head_share=0.09)
    assert chosen.lora_target_modules == BLOCKS


def test_targets_the_spec_names_are_kept_and_full_fine_tuning_has_none() -> None:
    named = choose(_spec(lora_target_modules=["c_attn"]), 10_000, 917_504, head_share=0.57)
    assert named.lora_target_modules == ["c_attn"] and "lora_target_modules" not in named.auto
    full = choose(_spec(method="full"), 10_000, 917_504, model_type="gpt_bigcode", head_share=0.57)
    assert full.lora_target_modules is None


def test_values_the_spec_sets_are_kept() -> None:
    spec = _spec(epochs=2, learning_rate=1e-3, lora_r=4, lora_alpha=4, lora_target_modules=BLOCKS)
    chosen = choose(spec, 40_000, 10**9)
    assert (chosen.epochs, chosen.learning_rate, chosen.lora_r, chosen.lora_alpha) == (
        2,
        1e-3,
        4,
        4,
    )
    assert chosen.auto == [] and chosen.steps == 9  # 2 x 40,000 / 8,192


def test_max_steps_needs_no_token_count() -> None:
    chosen = choose(_spec(max_steps=7), None, None)
    assert (chosen.steps, chosen.epochs) == (7, None)


@pytest.mark.slow
def test_a_run_records_the_values_it_chose(
    tiny_base: Path, dataset: FileStore, tmp_path: Path
) -> None:
    spec = make_spec(tiny_base, max_steps=None, seq_len=64, **AUTO)
    logs: list[str] = []
    result = run_training(spec, dataset, job_id="auto-1", work_dir=tmp_path, on_log=logs.append)
    chosen = result.hyperparameters
    assert chosen is not None and chosen["auto"] == list(AUTO)
    assert result.steps == chosen["steps"] >= MIN_STEPS
    assert chosen["learning_rate"] == 3e-3  # a 1M-parameter base: the top of the range
    assert chosen["lora_target_modules"] == [*BLOCKS, "lm_head"]  # its head is 57 % of it
    assert any(line.startswith("hyperparameters chosen") for line in logs)
