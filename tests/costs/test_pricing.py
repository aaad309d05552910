"""The pure decisions behind costs: prices in effect, charges, spend by day and kind, budgets,
and the estimate's FLOPs model."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tailor.jobs.usage import Usage, local_usage
from tailor.services.costs import estimate as model
from tailor.services.costs.pricing import (
    Budget,
    PricePoint,
    Prices,
    Stretch,
    add_up,
    budget_refusal,
    budget_warning,
    endpoint_charges,
    job_charge,
    month_of,
)

T0 = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
A100 = "nvidia-a100-80gb"


def test_a_job_is_priced_at_the_price_in_effect_when_it_ended() -> None:
    prices = Prices([PricePoint(A100, 2.0, T0), PricePoint(A100, 4.0, T0 + timedelta(days=1))])
    used = Usage(A100, 2, gpu_seconds=2 * 1800.0)  # 2 GPUs for half an hour

    before = job_charge(1, "finetune", used, T0 + timedelta(hours=1), prices)
    after = job_charge(1, "finetune", used, T0 + timedelta(days=2), prices)

    assert (before.gpu_hours, before.cost, after.cost) == (1.0, 2.0, 4.0)


def test_gpu_time_of_a_type_without_a_price_is_unpriced_not_free() -> None:
    charge = job_charge(1, "finetune", Usage("nvidia-h200", 1, 3600.0), T0, Prices([]))

    assert (charge.cost, charge.priced) == (0.0, False)
    assert add_up([charge]).unpriced_gpu_seconds == 3600.0


def test_a_cpu_only_local_run_records_cpu_time_and_no_gpu() -> None:
    used = local_usage(wall_seconds=10.0, cpu_seconds=7.5, gpu_type="local-gpu", gpus=0)

    assert used == Usage(None, 0, 0.0, 7.5, 10.0)
    assert job_charge(1, "harvest", used, T0, Prices([])).priced


def test_a_local_gpu_run_holds_every_device_for_its_wall_time() -> None:
    assert local_usage(100.0, 50.0, "local-gpu", 4).gpu_seconds == 400.0


def test_an_endpoint_is_charged_per_day_for_replicas_times_gpus() -> None:
    prices = Prices([PricePoint(A100, 3.0, T0 - timedelta(days=30))])
    stretch = Stretch(7, A100, replicas=2, gpus_per_replica=1, start=T0, end=None)

    charges = endpoint_charges(stretch, T0 - timedelta(days=1), T0 + timedelta(hours=6), prices)

    # 20:00 to midnight on the 30th, then midnight to 02:00 on the 1st: 2 GPUs each hour.
    assert [(c.day, c.gpu_hours, c.cost) for c in charges] == [
        (date(2026, 11, 30), 8.0, 24.0),
        (date(2026, 12, 1), 4.0, 12.0),
    ]


def test_spend_adds_up_by_day_kind_and_team() -> None:
    prices = Prices([PricePoint(A100, 1.0, T0 - timedelta(days=1))])
    charges = [
        job_charge(1, "finetune", Usage(A100, 1, 7200.0), T0, prices),
        job_charge(1, "evaluation", Usage(A100, 1, 3600.0), T0 + timedelta(days=1), prices),
        job_charge(2, "finetune", Usage(A100, 1, 3600.0), T0, prices),
    ]

    spend = add_up(charges)

    assert spend.total == 4.0
    assert spend.by_kind == {"evaluation": 1.0, "finetune": 3.0}
    assert spend.by_team_day == {1: {T0.date(): 2.0, date(2026, 12, 1): 1.0}, 2: {T0.date(): 1.0}}


def test_the_month_runs_from_its_first_midnight_to_the_next_months() -> None:
    assert month_of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


def test_past_the_soft_limit_warns_and_names_the_amounts() -> None:
    budget = Budget(soft_limit=100.0, hard_limit=150.0)

    assert budget_warning("search", 99.0, budget, "USD") is None
    assert budget_warning("search", 120.0, budget, "USD") == (
        "team search has spent 120.00 USD this month, past its budget's soft limit of "
        "100.00 USD; new training stops at 150.00 USD"
    )


def test_the_hard_limit_refuses_when_spent_or_when_the_estimate_would_pass_it() -> None:
    budget = Budget(hard_limit=150.0)

    assert budget_refusal("search", 100.0, 40.0, budget, "USD") is None
    spent = budget_refusal("search", 150.0, 0.0, budget, "USD")
    passing = budget_refusal("search", 100.0, 60.0, budget, "USD")

    assert spent is not None and "150.00 USD of its hard limit 150.00 USD" in spent
    assert passing is not None and "estimated at 60.00 USD" in passing
    assert budget_refusal("search", 1e9, 1e9, Budget(), "USD") is None  # no limit set


def test_the_flops_model_is_six_n_tokens_over_peak_times_mfu() -> None:
    # 1B parameters, 1B tokens, full fine-tuning on an A100 at MFU 0.40.
    seconds = model.flops_gpu_seconds(10**9, 10**9, "full", A100)

    assert seconds == pytest.approx(6e18 / (312e12 * 0.40))


def test_measured_throughput_wins_over_the_flops_model() -> None:
    found = model.estimate(
        tokens=3_600_000, method="lora", gpu_type=A100, gpus=1, params=10**9,
        throughput=model.measured_throughput([(1000, 1.0), (3000, 1.0), (2000, 2.0)]),
        price_per_gpu_hour=2.0,
    )  # fmt: skip

    assert found.basis == "measured"
    assert (found.gpu_hours, found.price) == (1.0, 2.0)  # 1,000 tokens per GPU-second


def test_without_size_or_history_there_is_no_figure_and_on_a_cpu_no_gpu_time() -> None:
    unknown = model.estimate(tokens=10, method="lora", gpu_type=A100, gpus=1, params=None,
                             throughput=None, price_per_gpu_hour=1.0)  # fmt: skip
    cpu = model.estimate(tokens=10, method="lora", gpu_type=None, gpus=0, params=None,
                         throughput=None, price_per_gpu_hour=None)  # fmt: skip

    assert (unknown.basis, unknown.gpu_hours) == ("unknown", None)
    assert (cpu.basis, cpu.gpu_hours, cpu.price) == ("cpu", 0.0, 0.0)


@pytest.mark.parametrize(
    ("name", "params"),
    [("starcoderbase-1b", 10**9), ("Qwen2.5-Coder-7B", 7 * 10**9), ("codegen-350M", 350 * 10**6),
     ("tiny-base", None)],
)  # fmt: skip
def test_a_base_named_with_its_size_gives_its_parameter_count(name: str, params: int) -> None:
    assert model.params_from_name(name) == params


def test_a_config_gives_twelve_l_d_squared_plus_embeddings() -> None:
    config = {"n_layer": 2, "n_embd": 64, "vocab_size": 1000}

    assert model.params_from_config(config) == 12 * 2 * 64 * 64 + 1000 * 64
