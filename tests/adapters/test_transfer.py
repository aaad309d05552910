"""Transfer: an adapter moves to a same-shape sibling base and is refused by any other."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tailor.stages.package.artifacts import read_manifest
from tailor.stages.package.errors import IncompatibleBaseError
from tailor.stages.package.spec import TransferSpec
from tailor.stages.package.transfer import transfer_adapter
from tests.adapters.conftest import logits

SIBLING = TransferSpec(target_base="tiny-base-instruct", target_revision="r9")


def test_transfer_to_a_same_shape_sibling_records_base_and_parent(
    tiny_base: Path, sibling_base: Path, adapter_a: Path, tmp_path: Path
) -> None:
    manifest = transfer_adapter(adapter_a, tiny_base, sibling_base, SIBLING, "code@2", tmp_path)
    assert (manifest.base_model, manifest.base_revision) == ("tiny-base-instruct", "r9")
    assert manifest.parents == ["code@2"]
    assert manifest.origin == "transferred"
    assert manifest.metrics == {}  # to be evaluated on the new base
    assert read_manifest(tmp_path) == manifest


def test_transferred_adapter_runs_on_the_sibling(
    tiny_base: Path, sibling_base: Path, adapter_a: Path, input_ids: torch.Tensor, tmp_path: Path
) -> None:
    transfer_adapter(adapter_a, tiny_base, sibling_base, SIBLING, "code@2", tmp_path)
    on_sibling = logits(sibling_base, tmp_path, input_ids)
    assert not torch.allclose(on_sibling, logits(sibling_base, None, input_ids), atol=1e-3)


def test_transfer_to_a_different_hidden_size_is_refused(
    tiny_base: Path, wider_base: Path, adapter_a: Path, tmp_path: Path
) -> None:
    with pytest.raises(IncompatibleBaseError, match=r"hidden size: target has n_embd=64.*128"):
        transfer_adapter(adapter_a, tiny_base, wider_base, SIBLING, "code@2", tmp_path)
    assert not (tmp_path / "adapter_model.safetensors").exists()


def test_transfer_to_a_different_layer_count_is_refused(
    tiny_base: Path, deeper_base: Path, adapter_a: Path, tmp_path: Path
) -> None:
    with pytest.raises(IncompatibleBaseError, match=r"layer count: target has n_layer=3"):
        transfer_adapter(adapter_a, tiny_base, deeper_base, SIBLING, "code@2", tmp_path)


def test_transfer_between_architectures_is_refused(
    tiny_base: Path, sibling_base: Path, adapter_a: Path, tmp_path: Path
) -> None:
    llama_like = tmp_path / "llama"
    llama_like.mkdir()
    config = (sibling_base / "config.json").read_text()
    (llama_like / "config.json").write_text(config.replace('"gpt_bigcode"', '"llama"'))
    with pytest.raises(IncompatibleBaseError, match="model_type is 'llama'"):
        transfer_adapter(adapter_a, tiny_base, llama_like, SIBLING, "code@2", tmp_path / "out")
