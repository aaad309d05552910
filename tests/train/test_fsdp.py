"""Full fine-tuning sharded with FSDP2 across 2 processes on the CPU (torchrun, gloo)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailor.stages.train.entrypoint import run_training
from tailor.storage import FileStore
from tests.train.conftest import make_spec

pytestmark = pytest.mark.slow


def test_full_fine_tuning_shards_over_two_processes_and_stores_a_loadable_model(
    tiny_base: Path, dataset: FileStore, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    logs: list[str] = []
    spec = make_spec(
        tiny_base, method="full", num_processes=2, max_steps=3, learning_rate=2e-3, micro_batch=2
    )

    result = run_training(
        spec, dataset, job_id="job-full", work_dir=tmp_path / "work", on_log=logs.append
    )

    assert any("FSDP2 (parameters sharded) on 2 processes (cpu)" in line for line in logs)
    assert (result.method, result.steps, result.device) == ("full", 3, "cpu")
    assert [m["step"] for m in result.metrics] == [1, 2, 3]
    assert result.trainable_params == result.total_params
    assert result.eval_loss_after is not None and result.eval_loss_before is not None
    assert result.eval_loss_after < result.eval_loss_before
    # rank 0 gathered the shards into one transformers checkpoint
    local = tmp_path / "model"
    for key in dataset.list(spec.adapter_prefix()):
        dataset.download_file(key, local / key.removeprefix(spec.adapter_prefix()))
    assert json.loads((local / "tailor.json").read_text())["kind"] == "full"
    tuned = AutoModelForCausalLM.from_pretrained(local)
    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    assert tuned.lm_head.weight.data_ptr() == tuned.transformer.wte.weight.data_ptr()  # still tied
    changed = [
        name
        for (name, p), q in zip(tuned.named_parameters(), base.parameters(), strict=True)
        if not torch.equal(p, q)
    ]
    assert "transformer.h.0.attn.c_attn.weight" in changed
