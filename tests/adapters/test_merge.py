"""Export: a merged checkpoint computes what base + adapter computed, and ships by link."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tailor.stages.package.errors import VersionNotFoundError
from tailor.stages.package.merge import MergedCheckpoint, export_links, merge_adapter, upload_export
from tailor.storage import FileStore, S3Store
from tests.adapters.conftest import PROMPT, logits, make_adapter


@pytest.fixture(scope="module")
def merged(
    tiny_base: Path, adapter_a: Path, tmp_path_factory: pytest.TempPathFactory
) -> MergedCheckpoint:
    """adapter_a merged into the tiny base, in shards of at most 200 kB."""
    out = tmp_path_factory.mktemp("merged")
    return merge_adapter(tiny_base, adapter_a, out, max_shard_size="200KB")


def test_merged_logits_equal_base_plus_adapter(
    merged: MergedCheckpoint, tiny_base: Path, adapter_a: Path, input_ids: torch.Tensor
) -> None:
    model = AutoModelForCausalLM.from_pretrained(merged.path, dtype=torch.float32).eval()
    with torch.no_grad():
        standalone = model(input_ids=input_ids).logits
    expected = logits(tiny_base, adapter_a, input_ids)
    assert torch.allclose(standalone, expected, atol=1e-4)
    assert not torch.allclose(standalone, logits(tiny_base, None, input_ids), atol=1e-3)


def test_export_is_sharded_safetensors_with_a_tokenizer(merged: MergedCheckpoint) -> None:
    assert merged.shards > 1
    index = json.loads((merged.path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) <= set(merged.files)
    assert not [f for f in merged.files if f.endswith((".bin", ".pt", ".pth"))]
    tokenizer = AutoTokenizer.from_pretrained(merged.path)
    assert tokenizer.decode(tokenizer(PROMPT)["input_ids"]) == PROMPT


def test_export_links_download_the_files(merged: MergedCheckpoint, s3_store: S3Store) -> None:
    keys = upload_export(s3_store, "acme", "code", 3, merged)
    assert all(k.startswith("teams/acme/exports/code/3/") for k in keys)
    links = export_links(s3_store, "acme", "code", 3, expires_s=600)
    assert set(links) == {*merged.files, "tailor_export.json"}
    url = links["config.json"]
    expires = int(parse_qs(urlparse(url).query)["Expires"][0])  # boto3's query signature
    assert abs(expires - (time.time() + 600)) < 60
    assert httpx.get(url).content == (merged.path / "config.json").read_bytes()


def test_links_to_another_teams_export_are_not_found(
    merged: MergedCheckpoint, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "objects")
    upload_export(store, "acme", "code", 3, merged)
    with pytest.raises(VersionNotFoundError, match="code@3 for team globex"):
        export_links(store, "globex", "code", 3)


def test_merge_on_the_pretrained_tiny_base_matches(
    pretrained_tiny_base: Path, tmp_path: Path
) -> None:
    adapter = make_adapter(pretrained_tiny_base, tmp_path / "adapter", seed=4)
    checkpoint = merge_adapter(pretrained_tiny_base, adapter, tmp_path / "merged")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint.path)
    ids = torch.tensor([tokenizer("<fim_prefix>def f(x):<fim_suffix>\n<fim_middle>")["input_ids"]])
    model = AutoModelForCausalLM.from_pretrained(checkpoint.path, dtype=torch.float32).eval()
    with torch.no_grad():
        standalone = model(input_ids=ids).logits
    assert torch.allclose(standalone, logits(pretrained_tiny_base, adapter, ids), atol=1e-4)


def test_merging_an_adapted_output_head_leaves_the_tied_embedding_alone(
    tiny_base: Path, input_ids: torch.Tensor, tmp_path: Path
) -> None:
    # Tailor adapts the output head of small bases, whose head shares the input embedding.
    adapter = make_adapter(tiny_base, tmp_path / "adapter", seed=5, targets=["c_attn", "lm_head"])
    checkpoint = merge_adapter(tiny_base, adapter, tmp_path / "merged")
    model = AutoModelForCausalLM.from_pretrained(checkpoint.path, dtype=torch.float32).eval()
    with torch.no_grad():
        standalone = model(input_ids=input_ids).logits
    assert torch.allclose(standalone, logits(tiny_base, adapter, input_ids), atol=1e-4)
