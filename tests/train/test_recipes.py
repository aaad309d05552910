"""LoRA and QLoRA on the tiny StarCoder-architecture model: a few steps each, on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailor.stages.package.artifacts import load_version
from tailor.stages.train import checkpoints
from tailor.stages.train.entrypoint import exit_code, run_training
from tailor.stages.train.errors import DatasetError, ModelError, TrainingCancelled
from tailor.stages.train.loop import Metrics
from tailor.stages.train.protocol import EXIT_SPEC_ERROR
from tailor.storage import FileStore
from tests.train.conftest import DATASET, TEAM, make_spec

pytestmark = pytest.mark.slow
ADAPTER = f"teams/{TEAM}/adapters/house-style/1/"


def test_lora_lowers_the_eval_loss_and_stores_a_registrable_adapter(
    tiny_base: Path, dataset: FileStore, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    seen: list[Metrics] = []
    progress: list[float] = []
    spec = make_spec(tiny_base, max_steps=8, eval_interval=4)

    result = run_training(
        spec,
        dataset,
        job_id="job-lora",
        work_dir=tmp_path / "work",
        on_metrics=seen.append,
        on_progress=lambda fraction, _: progress.append(fraction),
    )

    assert result.eval_loss_after is not None and result.eval_loss_before is not None
    assert result.eval_loss_after < result.eval_loss_before - 0.05
    assert (result.method, result.attention, result.device) == ("lora", "sdpa", "cpu")
    assert [m["step"] for m in seen] == list(range(1, 9)) and progress[-1] == 1.0
    assert "eval_loss" in seen[3] and result.padding_fraction == 0.0
    assert 0 < result.trainable_params < result.total_params / 10
    assert sorted(k.removeprefix(ADAPTER) for k in dataset.list(ADAPTER)) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "tailor.json",
    ]
    manifest = load_version(dataset, TEAM, "house-style", 1, tmp_path / "fetched")
    assert (manifest.base_model, manifest.dataset_id) == ("tiny-base", DATASET)
    assert "base_source" not in manifest.spec  # where the platform keeps it is not recorded
    assert manifest.metrics["eval_loss_after"] == pytest.approx(result.eval_loss_after)
    assert manifest.spec["method"] == "lora"
    config = json.loads((tmp_path / "fetched" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny-base"
    assert not dataset.list(spec.checkpoint_prefix("job-lora"))  # finished: checkpoints gone
    tuned = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_base), tmp_path / "fetched"
    )
    assert tuned.peft_config["default"].r == 8


def test_qlora_trains_lora_on_a_4bit_nf4_base_on_the_cpu(
    tiny_base: Path, dataset: FileStore, tmp_path: Path
) -> None:
    spec = make_spec(tiny_base, method="qlora", max_steps=5, learning_rate=1e-2, micro_batch=2)

    result = run_training(spec, dataset, job_id="job-qlora", work_dir=tmp_path / "work")

    assert (result.method, result.precision, result.fallback_reason) == ("qlora", "bf16", None)
    assert result.eval_loss_after is not None and result.eval_loss_before is not None
    assert result.eval_loss_after < result.eval_loss_before
    assert dataset.exists(ADAPTER + "adapter_model.safetensors")
    assert json.loads(dataset.get_bytes(ADAPTER + "tailor.json"))["result"]["method"] == "qlora"


def test_qlora_trains_on_after_an_eval_pass_between_its_steps(
    tiny_base: Path, dataset: FileStore, tmp_path: Path
) -> None:
    # train -> eval -> train: on a CPU with AVX512-BF16, bitsandbytes used to leave the 4-bit
    # weights in its inference layout after the eval pass, and the next step failed.
    seen: list[Metrics] = []
    spec = make_spec(
        tiny_base, method="qlora", max_steps=3, eval_interval=1, learning_rate=1e-2, micro_batch=2
    )

    run_training(
        spec, dataset, job_id="job-qlora-eval", work_dir=tmp_path / "work", on_metrics=seen.append
    )

    assert [m["step"] for m in seen] == [1, 2, 3]
    assert all(isinstance(m["eval_loss"], float) for m in seen)


def test_an_eval_pass_leaves_the_4bit_base_exactly_as_it_was(
    tiny_base: Path, tmp_path: Path
) -> None:
    import torch

    from tailor.stages.train import loop
    from tailor.stages.train.recipes import qlora

    # The recipe's setup alone: the rank the run would choose first is given here.
    spec = make_spec(tiny_base, method="qlora", micro_batch=2, lora_r=8, lora_alpha=16)
    s = qlora.setup(spec, loop.Hooks("j", tmp_path), torch.device("cpu"))
    quantized = {n: p for n, p in s.model.named_parameters() if p.dtype == torch.uint8}
    before = {n: (p.data.clone(), p.quant_state.absmax.clone()) for n, p in quantized.items()}

    loop.evaluate(s.model, [list(range(1, 65))] * 2, 2, s.device, s.amp)

    assert quantized and all(
        torch.equal(p.data, before[n][0]) and torch.equal(p.quant_state.absmax, before[n][1])
        for n, p in quantized.items()
    )


def test_a_stop_request_ends_the_run_without_an_adapter_and_keeps_the_checkpoint(
    tiny_base: Path, dataset: FileStore, tmp_path: Path
) -> None:
    seen: list[Metrics] = []
    spec = make_spec(tiny_base, max_steps=20, checkpoint_interval=1)

    with pytest.raises(TrainingCancelled, match="after step 2"):
        run_training(
            spec,
            dataset,
            job_id="job-stop",
            work_dir=tmp_path / "work",
            on_metrics=seen.append,
            should_stop=lambda: len(seen) >= 2,
        )

    assert len(seen) == 2
    assert not dataset.list(ADAPTER)
    # Kept for a resume (a stop is also how a preempted pod leaves); older ones are pruned.
    assert checkpoints.completed_steps(dataset, spec.checkpoint_prefix("job-stop")) == [2]


def test_a_missing_dataset_fails_before_training_with_a_spec_error(
    tiny_base: Path, store: FileStore, tmp_path: Path
) -> None:
    spec = make_spec(tiny_base, dataset_id="never-harvested")

    with pytest.raises(DatasetError, match=r"not found .* run a harvest first") as caught:
        run_training(spec, store, job_id="j", work_dir=tmp_path / "work")

    assert exit_code(caught.value) == EXIT_SPEC_ERROR


def test_lora_targets_that_do_not_exist_in_the_model_are_named(
    tiny_base: Path, dataset: FileStore, tmp_path: Path
) -> None:
    spec = make_spec(tiny_base, lora_target_modules=["q_proj", "v_proj"])

    with pytest.raises(ModelError, match=r"LoRA targets \['q_proj', 'v_proj'\] do not fit"):
        run_training(spec, dataset, job_id="j", work_dir=tmp_path / "work")
