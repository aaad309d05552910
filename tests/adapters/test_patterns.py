"""Module patterns of an uploaded config are globs, never regexes, and mean what PEFT means.

The attack (reviewer's finding 3): an imported adapter's `rank_pattern` key is used as a
regular expression, so a catastrophically backtracking key pins the shared worker for
minutes. Tailor never hands such a key to `re`; for ordinary keys the adapter behaves,
served and merged, exactly as PEFT makes it behave.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from peft.utils.other import get_pattern_key

from tailor.stages.package.errors import InvalidAdapterError
from tailor.stages.package.loading import load_base
from tailor.stages.package.merge import merge_adapter
from tailor.stages.package.validate import import_adapter, validate_adapter_dir
from tests.adapters.conftest import logits, make_adapter

# The reviewer's key: nested quantifiers that backtrack exponentially on a long name.
EVIL = "(a+)+$b"
ORDINARY = ["c_fc", "h.1.attn.c_attn", "transformer.h.0.mlp.c_proj", "attn.c_proj"]


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every pattern `re` compiles from now on; one holding a glob or the evil key fails."""
    patterns: list[str] = []
    original = re._compile  # type: ignore[attr-defined]

    def recording(pattern: Any, flags: Any) -> Any:
        text = pattern if isinstance(pattern, str) else ""
        if EVIL in text or "h.*.mlp" in text or "a+)+" in text:
            raise AssertionError(f"a key from the upload reached re: {text!r}")
        patterns.append(text)
        return original(pattern, flags)

    monkeypatch.setattr(re, "_compile", recording)
    yield patterns


def _modules(base_dir: Path) -> list[str]:
    model = load_base(base_dir)
    return [name for name, _ in model.named_modules() if name]


def _with_config(adapter: Path, dest: Path, **changes: object) -> Path:
    shutil.copytree(adapter, dest)
    config = json.loads((dest / "adapter_config.json").read_text()) | changes
    (dest / "adapter_config.json").write_text(json.dumps(config))
    return dest


def test_ordinary_keys_pick_the_value_peft_picks_for_every_module(tiny_base: Path) -> None:
    from tailor.stages.package.patterns import pattern_value

    patterns = {key: rank for rank, key in enumerate(ORDINARY, start=2)}
    for module in _modules(tiny_base):
        peft_key = get_pattern_key(list(patterns), module)
        expected = patterns.get(peft_key, 1)
        assert pattern_value(patterns, module, 1) == expected, module


def test_a_glob_key_is_anchored_at_module_name_boundaries() -> None:
    from tailor.stages.package.patterns import key_matches

    assert key_matches("h.*.mlp.c_fc", "transformer.h.1.mlp.c_fc")
    assert key_matches("c_?tt?", "transformer.h.0.attn.c_attn")
    assert not key_matches("attn", "transformer.h.0.attn.c_attn")  # not the name's end
    assert not key_matches("0.attn.c_attn", "transformer.h.10.attn.c_attn")  # mid-part


def test_the_catastrophic_key_is_refused_without_reaching_re(
    tiny_base: Path, adapter_a: Path, tmp_path: Path, compiled: list[str]
) -> None:
    upload = _with_config(adapter_a, tmp_path / "upload", rank_pattern={EVIL: 8})
    with pytest.raises(InvalidAdapterError, match="not a module name or glob"):
        validate_adapter_dir(upload, tiny_base)


def test_a_pathological_glob_costs_linear_work_and_matches_nothing(compiled: list[str]) -> None:
    from tailor.stages.package.patterns import canonical_config

    key = "*a" * 120 + "b"  # exponential for a naive backtracking matcher
    module = "a" * 250 + ".c_attn"
    config = {"r": 4, "rank_pattern": {key: 8}}
    assert canonical_config(config, [module])["rank_pattern"] == {}


def test_keys_that_are_not_names_or_globs_are_refused_clearly() -> None:
    from tailor.stages.package.patterns import check_patterns

    for key in (EVIL, "h\\.[0-3]\\.mlp", "^transformer", "c_attn|c_fc", "", "x" * 300):
        with pytest.raises(InvalidAdapterError):
            check_patterns({"rank_pattern": {key: 8}})
    with pytest.raises(InvalidAdapterError, match="positive integer"):
        check_patterns({"rank_pattern": {"c_fc": 0}})


def test_an_imported_glob_adapter_is_stored_with_module_names_that_peft_loads_as_is(
    tiny_base: Path, tmp_path: Path, input_ids: torch.Tensor, compiled: list[str]
) -> None:
    # The same adapter, uploaded with a glob for "every layer's c_fc".
    reference = make_adapter(tiny_base, tmp_path / "reference", seed=4, rank_pattern={"c_fc": 8})
    upload = _with_config(reference, tmp_path / "upload", rank_pattern={"h.*.mlp.c_fc": 8})
    out = tmp_path / "out"
    import_adapter(upload, tiny_base, out, base_model="tiny-base", work_dir=tmp_path / "w")

    stored = json.loads((out / "adapter_config.json").read_text())
    assert stored["rank_pattern"] == {
        "transformer.h.0.mlp.c_fc": 8,
        "transformer.h.1.mlp.c_fc": 8,
    }
    expected = logits(tiny_base, reference, input_ids)
    assert torch.allclose(logits(tiny_base, out, input_ids), expected, atol=1e-5)


def test_an_imported_adapter_with_patterns_serves_and_merges_as_peft_makes_it(
    tiny_base: Path, tmp_path: Path, input_ids: torch.Tensor
) -> None:
    reference = make_adapter(
        tiny_base, tmp_path / "reference", seed=6,
        rank_pattern={"c_fc": 8, "h.1.attn.c_attn": 2}, alpha_pattern={"c_proj": 32},
    )  # fmt: skip
    upload = _with_config(reference, tmp_path / "upload")
    out = tmp_path / "out"
    import_adapter(upload, tiny_base, out, base_model="tiny-base", work_dir=tmp_path / "w")

    expected = logits(tiny_base, reference, input_ids)
    assert torch.allclose(logits(tiny_base, out, input_ids), expected, atol=1e-5)
    merged = tmp_path / "merged"
    merge_adapter(tiny_base, out, merged)
    assert torch.allclose(logits(merged, None, input_ids), expected, atol=1e-4)
