"""The stand-in bases: built from code every machine has, deterministic, cached by their inputs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from tailor.demo.stdlib_corpus import broad_code_files, stdlib_dir
from tailor.demo.tiny import CODE, build_tiny_base, tiny_base_cached, tiny_cache_key

# The CODE recipe's shape on a few files and steps: its code path, in seconds.
SMALL_CODE = replace(CODE, name="code-small", files=30, eval_files=4, steps=3, vocab_size=600)


def test_the_broad_corpus_spans_the_stdlib_and_site_packages() -> None:
    files = broad_code_files(300)
    assert len(files) == 300
    assert any(stdlib_dir() in f.parents for f in files)
    assert any("site-packages" in f.parts for f in files)
    assert broad_code_files(300) == files  # the same installation, the same sample


def test_a_build_records_its_size_and_held_out_loss_and_loads_with_from_pretrained(
    tmp_path: Path,
) -> None:
    out = build_tiny_base(tmp_path / "base", recipe=SMALL_CODE)
    info = json.loads((out / "tailor_tiny.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(out)
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["files"] == 30 and info["eval_files"] == 4
    assert info["eval_loss"] > 0 and info["build_s"] > 0
    assert "<fim_middle>" in AutoTokenizer.from_pretrained(out).get_vocab()


def test_the_same_seed_builds_the_same_weights(tmp_path: Path) -> None:
    first = build_tiny_base(tmp_path / "a", recipe=SMALL_CODE, seed=3)
    second = build_tiny_base(tmp_path / "b", recipe=SMALL_CODE, seed=3)
    name = "model.safetensors"
    assert (first / name).read_bytes() == (second / name).read_bytes()


def test_the_cache_key_changes_with_seed_recipe_and_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.py").write_text("x = 1\n" * 300)
    key = tiny_cache_key(recipe=SMALL_CODE, corpus_dir=corpus)
    assert tiny_cache_key(recipe=SMALL_CODE, corpus_dir=corpus, seed=1) != key
    assert tiny_cache_key(recipe=replace(SMALL_CODE, n_layer=2), corpus_dir=corpus) != key
    (corpus / "a.py").write_text("y = 2\n" * 300)
    assert tiny_cache_key(recipe=SMALL_CODE, corpus_dir=corpus) != key


def test_a_cached_build_is_reused(tmp_path: Path) -> None:
    first = tiny_base_cached(tmp_path, recipe=SMALL_CODE)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert tiny_base_cached(tmp_path, recipe=SMALL_CODE) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
