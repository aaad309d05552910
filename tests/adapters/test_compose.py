"""Composition: linear, SVD and cat combinations behave as their rank rules say."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tailor.stages.package.compose import compose_adapters
from tailor.stages.package.errors import BaseMismatchError, RankRuleError
from tailor.stages.package.spec import CompositionSpec, WeightedAdapter
from tests.adapters.conftest import logits, set_manifest


def _spec(kind: str, weights: dict[str, float], svd_rank: int | None = None) -> CompositionSpec:
    return CompositionSpec(
        adapters=[WeightedAdapter(ref=r, weight=w) for r, w in weights.items()],
        combination_type=kind,  # type: ignore[arg-type]
        svd_rank=svd_rank,
    )


def _delta(adapter_dir: Path, module: str, scaling: float) -> torch.Tensor:
    """The update B @ A * scaling an adapter applies to one module's weight."""
    tensors = load_file(adapter_dir / "adapter_model.safetensors")
    key = f"base_model.model.{module}"
    return tensors[f"{key}.lora_B.weight"] @ tensors[f"{key}.lora_A.weight"] * scaling


MODULE = "transformer.h.0.attn.c_attn"


def test_linear_with_zero_weight_reproduces_the_other_input(
    tiny_base: Path, adapter_a: Path, adapter_b: Path, input_ids: torch.Tensor, tmp_path: Path
) -> None:
    spec = _spec("linear", {"code@1": 1.0, "chat@1": 0.0})
    compose_adapters(spec, {"code@1": adapter_a, "chat@1": adapter_b}, tiny_base, tmp_path)
    composed = logits(tiny_base, tmp_path, input_ids)
    assert torch.allclose(composed, logits(tiny_base, adapter_a, input_ids), atol=1e-5)
    assert not torch.allclose(composed, logits(tiny_base, adapter_b, input_ids), atol=1e-3)


def test_weighted_linear_differs_from_each_input(
    tiny_base: Path, adapter_a: Path, adapter_b: Path, input_ids: torch.Tensor, tmp_path: Path
) -> None:
    spec = _spec("linear", {"code@1": 1.0, "chat@1": 0.8})
    manifest = compose_adapters(
        spec, {"code@1": adapter_a, "chat@1": adapter_b}, tiny_base, tmp_path
    )
    composed = logits(tiny_base, tmp_path, input_ids)
    for single in (adapter_a, adapter_b):
        assert not torch.allclose(composed, logits(tiny_base, single, input_ids), atol=1e-3)
    assert manifest.parents == ["code@1", "chat@1"]
    assert manifest.origin == "composed"


def test_cat_is_the_exact_weighted_sum_and_adds_ranks(
    tiny_base: Path, adapter_a: Path, adapter_c: Path, tmp_path: Path
) -> None:
    spec = _spec("cat", {"code@1": 1.0, "wide@1": 0.8})
    manifest = compose_adapters(
        spec, {"code@1": adapter_a, "wide@1": adapter_c}, tiny_base, tmp_path
    )
    expected = _delta(adapter_a, MODULE, 8 / 4) + 0.8 * _delta(adapter_c, MODULE, 16 / 8)
    assert manifest.spec["rank"] == 12
    assert torch.allclose(_delta(tmp_path, MODULE, 1.0), expected, atol=1e-5)


def test_cat_with_zero_weight_reproduces_the_first_input(
    tiny_base: Path, adapter_a: Path, adapter_b: Path, input_ids: torch.Tensor, tmp_path: Path
) -> None:
    spec = _spec("cat", {"code@1": 1.0, "chat@1": 0.0})
    compose_adapters(spec, {"code@1": adapter_a, "chat@1": adapter_b}, tiny_base, tmp_path)
    composed = logits(tiny_base, tmp_path, input_ids)
    assert torch.allclose(composed, logits(tiny_base, adapter_a, input_ids), atol=1e-5)


def test_svd_of_different_ranks_is_exact_at_the_summed_rank(
    tiny_base: Path, adapter_a: Path, adapter_c: Path, tmp_path: Path
) -> None:
    spec = _spec("svd", {"code@1": 1.0, "wide@1": 0.8}, svd_rank=12)
    compose_adapters(spec, {"code@1": adapter_a, "wide@1": adapter_c}, tiny_base, tmp_path)
    expected = _delta(adapter_a, MODULE, 2.0) + 0.8 * _delta(adapter_c, MODULE, 2.0)
    assert torch.allclose(_delta(tmp_path, MODULE, 1.0), expected, atol=1e-4)


def test_svd_below_the_summed_rank_is_a_low_rank_approximation(
    tiny_base: Path, adapter_a: Path, adapter_b: Path, input_ids: torch.Tensor, tmp_path: Path
) -> None:
    spec = _spec("svd", {"code@1": 1.0, "chat@1": 0.8}, svd_rank=2)
    compose_adapters(spec, {"code@1": adapter_a, "chat@1": adapter_b}, tiny_base, tmp_path)
    delta = _delta(tmp_path, MODULE, 1.0)
    assert torch.linalg.matrix_rank(delta) == 2
    composed = logits(tiny_base, tmp_path, input_ids)
    for single in (adapter_a, adapter_b):
        assert not torch.allclose(composed, logits(tiny_base, single, input_ids), atol=1e-3)


def test_linear_refuses_unequal_ranks_and_names_the_alternatives(
    tiny_base: Path, adapter_a: Path, adapter_c: Path, tmp_path: Path
) -> None:
    spec = _spec("linear", {"code@1": 1.0, "wide@1": 0.8})
    with pytest.raises(RankRuleError, match=r"code@1 has rank 4, wide@1 has rank 8.*'cat'"):
        compose_adapters(spec, {"code@1": adapter_a, "wide@1": adapter_c}, tiny_base, tmp_path)
    assert not (tmp_path / "adapter_model.safetensors").exists()


def test_svd_rank_above_the_smallest_matrix_is_refused(
    tiny_base: Path, adapter_a: Path, adapter_b: Path, tmp_path: Path
) -> None:
    spec = _spec("svd", {"code@1": 1.0, "chat@1": 1.0}, svd_rank=200)
    with pytest.raises(RankRuleError, match="svd_rank must be at most 128"):
        compose_adapters(spec, {"code@1": adapter_a, "chat@1": adapter_b}, tiny_base, tmp_path)


def test_adapters_of_different_bases_are_refused(
    tiny_base: Path, adapter_a: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    for name in ("adapter_model.safetensors", "adapter_config.json", "tailor.json"):
        (other / name).write_bytes((adapter_a / name).read_bytes())
    set_manifest(other, base_model="starcoder2-3b")
    spec = _spec("cat", {"code@1": 1.0, "other@2": 1.0})
    with pytest.raises(BaseMismatchError, match="code@1 was trained on tiny-base@r1 but other@2"):
        compose_adapters(spec, {"code@1": adapter_a, "other@2": other}, tiny_base, tmp_path / "o")
